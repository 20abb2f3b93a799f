//! Device configs: validation with located errors, and a full start of the
//! simulator demo through the HAL.

use std::path::Path;
use std::time::Duration;

use vwed_boards::{BoardProfile, BusConfig, DeviceConfig, DispatchError, load};
use vwed_hal::{Io, Parity, Quality, Table, Value};

fn board(name: &str) -> BoardProfile {
    BoardProfile::builtin(name).expect("builtin board")
}

fn problems(text: &str, board_name: &str) -> Vec<(usize, String, String)> {
    match DeviceConfig::parse(text, "io.toml", &board(board_name)) {
        Ok(_) => panic!("config should be invalid"),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| (p.line, p.field.clone(), p.message.clone()))
            .collect(),
    }
}

const RTU: &str = r#"
[[bus]]
name = "line1"
kind = "rtu"
serial = "rs485"

[[device]]
name = "press"
bus = "line1"
unit = 3
"#;

#[test]
fn rtu_bus_takes_port_path_and_defaults_from_the_board() {
    let cfg = DeviceConfig::parse(RTU, "io.toml", &board("revpi-connect")).expect("valid");
    match &cfg.buses[0].config {
        BusConfig::Rtu { serial, .. } => {
            assert_eq!(serial.path, "/dev/ttyRS485");
            assert_eq!((serial.baud, serial.parity), (19200, Parity::Even));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_board_port_is_located_and_lists_the_ports() {
    let found = problems(RTU, "siemens-iot2050");
    assert_eq!(found.len(), 1);
    let (line, field, message) = &found[0];
    assert_eq!((*line, field.as_str()), (5, "bus[0].serial"));
    assert!(message.contains("x30, shield, usb0"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let text = r#"
[[bus]]
name = "plc"
kind = "tcp"
host = "10.0.0.5"
baud = 9600

[[device]]
name = "press"
bus = "plc"
unit = 1

[[point]]
tag = "press.run"
device = "press"
table = "coil"
address = 1
type = "f32"

[[point]]
tag = "press.temp"
device = "nope"
table = "input"
address = 65535
type = "u32"

[[point]]
tag = "press.run"
device = "press"
table = "holding"
address = 0
scale = 0.0

[[robot]]
name = "arm"
status = ["press.missing"]
[robot.commands]
start = "press.temp"
"#;
    let found = problems(text, "linux-sim");
    let got: Vec<(usize, &str)> = found.iter().map(|(l, f, _)| (*l, f.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (6, "bus[0].baud"),
            (18, "point[0].type"),
            (22, "point[1].device"),
            (24, "point[1].address"),
            (28, "point[2].tag"),
            (32, "point[2].scale"),
            (36, "robot[0].status[0]"),
            (38, "robot[0].commands.start"),
        ],
        "{found:#?}"
    );
    assert!(found[7].2.contains("read-only"));
}

#[test]
fn misspelled_point_field_names_line_and_field() {
    let text = "[[point]]\ntag = \"a\"\ndevice = \"d\"\ntable = \"holding\"\nadress = 1\n";
    let found = problems(text, "linux-sim");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].0, found[0].1.as_str()),
        (5, "adress"),
        "{found:?}"
    );
}

#[test]
fn bad_enum_value_and_syntax_errors_are_located() {
    let found = problems("[[bus]]\nname = \"x\"\nkind = \"can\"\n", "linux-sim");
    assert_eq!(found[0].0, 3, "{found:?}");
    let found = problems("[[bus]\nname = \"x\"\n", "linux-sim");
    assert_eq!(found[0].0, 1, "{found:?}");
}

#[test]
fn unit_zero_is_refused_on_rtu() {
    let text = RTU.replace("unit = 3", "unit = 0");
    let found = problems(&text, "revpi-connect");
    assert_eq!((found[0].0, found[0].1.as_str()), (10, "device[0].unit"));
}

fn demo_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-demo.toml")
}

#[test]
fn demo_config_loads_with_its_board() {
    let setup = load(&demo_path(), None).expect("demo loads");
    assert_eq!(setup.board.name, "linux-sim");
    assert_eq!(setup.devices.points.len(), 6);
    let agv = setup.devices.robot("agv1").expect("robot");
    assert_eq!(
        agv.commands.get("goto_station").map(String::as_str),
        Some("agv1.target_station")
    );
    // Input registers are read-only whatever the file says.
    let count = setup
        .devices
        .points
        .iter()
        .find(|p| p.tag == "conveyor.count")
        .expect("point");
    assert!(count.read_only);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_config_runs_on_the_simulator() {
    let setup = load(&demo_path(), None).expect("demo loads");
    let (io, mut changes) = Io::start(setup.devices.to_io_spec()).expect("io starts");
    let sim = io.sim("sim").expect("sim bus").clone();
    sim.set_words(1, Table::Holding, 0, &[125]);
    sim.set_words(1, Table::Input, 0, &[0x0002, 0x0001]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let speed = io.poller().point("conveyor.speed");
        let count = io.poller().point("conveyor.count");
        if speed.as_ref().map(|p| p.quality) == Some(Quality::Good)
            && speed.and_then(|p| p.value) == Some(Value::Float(12.5))
            && count.and_then(|p| p.value) == Some(Value::UInt(0x0001_0002))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "demo values never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agv = setup.devices.robot("agv1").expect("robot");
    let writer = io.poller().writer("robot-dispatch");
    agv.dispatch(&writer, "goto_station", Value::UInt(7))
        .await
        .expect("dispatch");
    assert_eq!(sim.words(2, Table::Holding, 20, 1), Some(vec![7]));
    assert!(matches!(
        agv.dispatch(&writer, "fly", Value::UInt(1)).await,
        Err(DispatchError::UnknownCommand { .. })
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = agv.status(io.poller());
        assert_eq!(status.len(), 3);
        if status[2].value == Some(Value::UInt(7))
            && status.iter().all(|p| p.quality == Quality::Good)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "robot status never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(changes.recv().await.is_some());
    io.shutdown();
}

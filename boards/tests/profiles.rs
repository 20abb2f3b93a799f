//! Built-in board profiles load and describe the ports we expect.

use vwed_boards::{BoardProfile, LoadError, PortKind};
use vwed_hal::Parity;

#[test]
fn every_builtin_profile_loads() {
    let names = BoardProfile::builtin_names();
    assert_eq!(
        names,
        vec![
            "linux-sim",
            "raspberry-pi-4",
            "revpi-connect",
            "siemens-iot2050"
        ]
    );
    for name in names {
        let board = BoardProfile::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(board.name, name);
        assert!(!board.description.is_empty());
    }
}

#[test]
fn board_ports_have_the_expected_device_names() {
    let path = |board: &str, port: &str| {
        BoardProfile::builtin(board)
            .expect("builtin")
            .port(port)
            .map(|p| p.settings.path.clone())
    };
    assert_eq!(
        path("raspberry-pi-4", "uart0").as_deref(),
        Some("/dev/ttyAMA0")
    );
    assert_eq!(
        path("raspberry-pi-4", "miniuart").as_deref(),
        Some("/dev/ttyS0")
    );
    assert_eq!(
        path("raspberry-pi-4", "usb0").as_deref(),
        Some("/dev/ttyUSB0")
    );
    assert_eq!(
        path("revpi-connect", "rs485").as_deref(),
        Some("/dev/ttyRS485")
    );
    assert_eq!(
        path("siemens-iot2050", "x30").as_deref(),
        Some("/dev/ttyS1")
    );
    assert_eq!(
        path("siemens-iot2050", "shield").as_deref(),
        Some("/dev/ttyS2")
    );
    let iot = BoardProfile::builtin("siemens-iot2050").expect("builtin");
    assert_eq!(iot.port("x30").map(|p| p.kind), Some(PortKind::Switchable));
    let revpi = BoardProfile::builtin("revpi-connect").expect("builtin");
    let rs485 = revpi.port("rs485").expect("port");
    assert_eq!(
        (rs485.settings.baud, rs485.settings.parity),
        (19200, Parity::Even)
    );
    assert!(
        BoardProfile::builtin("linux-sim")
            .expect("builtin")
            .simulator
    );
}

#[test]
fn unknown_board_lists_the_builtin_ones() {
    let err = BoardProfile::builtin("beaglebone").expect_err("unknown");
    assert!(matches!(err, LoadError::UnknownBoard { .. }));
    assert!(err.to_string().contains("raspberry-pi-4"), "{err}");
}

#[test]
fn invalid_profile_names_file_line_and_field() {
    let text = "name = \"my-board\"\n\n[[serial_port]]\nname = \"com1\"\npath = \"/dev/ttyS0\"\nkind = \"rs232\"\nstop_bits = 3\n";
    let err = BoardProfile::parse(text, "my-board.toml").expect_err("invalid");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].file, "my-board.toml");
    assert_eq!(problems[0].line, 7);
    assert_eq!(problems[0].field, "serial_port[0].stop_bits");
    assert_eq!(
        err.to_string(),
        "my-board.toml:7:13: serial_port[0].stop_bits: must be 1 or 2"
    );
}

#[test]
fn misspelled_profile_key_is_reported_with_its_line() {
    let text = "name = \"b\"\n[defaults]\nbaudrate = 9600\n";
    let err = BoardProfile::parse(text, "b.toml").expect_err("invalid");
    let p = &err.problems()[0];
    assert_eq!((p.line, p.field.as_str()), (3, "baudrate"), "{err}");
}

#[test]
fn profile_loads_from_a_path() {
    let dir = std::env::temp_dir().join(format!("vwed-boards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("custom.toml");
    std::fs::write(
        &file,
        "name = \"custom\"\n[[serial_port]]\nname = \"rs485\"\npath = \"/dev/ttyXRUSB0\"\nkind = \"rs485\"\nbaud = 38400\n",
    )
    .expect("write");
    let board = BoardProfile::load(&file.display().to_string()).expect("load");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(board.port("rs485").map(|p| p.settings.baud), Some(38400));
}

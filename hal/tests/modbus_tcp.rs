//! Modbus TCP against a real pymodbus server on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, bounded, eventually, free_port};
use vwed_hal::{
    Bus, BusKind, BusSpec, Change, ConnectionState, DataType, Encoding, Exception, Io, IoSpec,
    MasterConfig, ModbusBus, PointSpec, Quality, RegisterBus, Table, TcpConnector, Value,
    WriteError,
};

async fn tcp_peer(port: u16) -> Peer {
    Peer::python("modbus_server.py", &["tcp", "127.0.0.1", &port.to_string()]).await
}

fn tcp_bus(port: u16) -> ModbusBus {
    let mut connector = TcpConnector::new(format!("127.0.0.1:{port}"));
    connector.request_timeout = Duration::from_millis(500);
    Bus::spawn("plc", connector, MasterConfig::default())
}

fn point(tag: &str, bus: &str, table: Table, address: u16, dt: DataType) -> PointSpec {
    PointSpec {
        tag: tag.into(),
        bus: bus.into(),
        unit: 1,
        table,
        address,
        encoding: Encoding::plain(dt),
        period: Duration::from_millis(100),
        deadband: 0.0,
        read_only: false,
    }
}

fn tcp_spec(name: &str, port: u16, request_timeout: Duration) -> BusSpec {
    BusSpec {
        name: name.into(),
        kind: BusKind::ModbusTcp {
            address: format!("127.0.0.1:{port}"),
            connect_timeout: Duration::from_millis(500),
            request_timeout,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_every_table() {
    bounded(Duration::from_secs(30), async {
        let port = free_port();
        let _peer = tcp_peer(port).await;
        let bus = tcp_bus(port);
        let mut c = bus.client("test", 8);

        let words = c.read_holding_registers(1, 0, 4).await;
        assert_eq!(words, Ok(Ok(vec![1234, 0x3FC0, 0x0000, 0xFFFE])));
        assert_eq!(c.read_holding_registers(2, 0, 1).await, Ok(Ok(vec![2234])));
        assert_eq!(c.read_coils(1, 0, 3).await, Ok(Ok(vec![true, false, true])));
        assert_eq!(
            c.read_discrete_inputs(1, 0, 2).await,
            Ok(Ok(vec![false, true]))
        );
        assert_eq!(c.read_input_registers(1, 1, 1).await, Ok(Ok(vec![42])));

        assert_eq!(c.write_single_register(1, 10, 777).await, Ok(Ok(())));
        assert_eq!(
            c.write_multiple_registers(1, 11, vec![1, 2, 3]).await,
            Ok(Ok(()))
        );
        assert_eq!(
            c.read_holding_registers(1, 10, 4).await,
            Ok(Ok(vec![777, 1, 2, 3]))
        );
        assert_eq!(c.write_single_coil(1, 1, true).await, Ok(Ok(())));
        assert_eq!(
            c.write_multiple_coils(1, 5, vec![true, true]).await,
            Ok(Ok(()))
        );
        assert_eq!(
            c.read_coils(1, 0, 7).await,
            Ok(Ok(vec![true, true, true, false, false, true, true]))
        );
        assert_eq!(bus.status_now().state, ConnectionState::Connected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_address_is_an_exception_not_a_transport_error() {
    bounded(Duration::from_secs(30), async {
        let port = free_port();
        let _peer = tcp_peer(port).await;
        let bus = tcp_bus(port);
        let mut c = bus.client("test", 8);
        assert_eq!(
            c.read_holding_registers(1, 100, 1).await,
            Ok(Err(Exception::IllegalDataAddress))
        );
        assert_eq!(
            c.write_single_register(1, 200, 1).await,
            Ok(Err(Exception::IllegalDataAddress))
        );
        // The connection survives an exception: the next request just works.
        assert_eq!(c.read_holding_registers(1, 0, 1).await, Ok(Ok(vec![1234])));
        let status = bus.status_now();
        assert_eq!(status.state, ConnectionState::Connected);
        assert_eq!(status.counters.exceptions, 2);
        assert_eq!(status.counters.transport_errors, 0);
        assert_eq!(status.counters.connect_attempts, 1);
    })
    .await;
}

fn drain(rx: &mut tokio::sync::mpsc::Receiver<Change>, into: &mut Vec<Change>) {
    while let Ok(change) = rx.try_recv() {
        into.push(change);
    }
}

/// Field complaint: polling silently stops after the network drops and only
/// a restart brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_resumes_by_itself_after_device_restart() {
    bounded(Duration::from_secs(60), async {
        let port = free_port();
        let peer = tcp_peer(port).await;
        let spec = IoSpec {
            buses: vec![tcp_spec("plc", port, Duration::from_millis(300))],
            points: vec![
                point("counter", "plc", Table::Input, 0, DataType::U16),
                point("answer", "plc", Table::Input, 1, DataType::U16),
            ],
            ..IoSpec::default()
        };
        let (io, mut rx) = Io::start(spec).expect("start io");
        let mut status = io.modbus_bus("plc").expect("bus").status();
        let poller = io.poller();
        let good = |tag: &str| poller.point(tag).map(|p| p.quality) == Some(Quality::Good);
        assert!(eventually(Duration::from_secs(5), || good("counter") && good("answer")).await);
        assert_eq!(
            poller.point("answer").and_then(|p| p.value),
            Some(Value::UInt(42))
        );

        peer.kill().await;
        assert!(
            eventually(Duration::from_secs(5), || !good("counter")
                && !good("answer"))
            .await,
            "points did not go bad after the device died"
        );
        status
            .wait_for(|s| s.state == ConnectionState::Disconnected)
            .await
            .expect("status channel open");

        let _peer = tcp_peer(port).await;
        let back = Instant::now();
        assert!(
            eventually(Duration::from_secs(5), || good("counter") && good("answer")).await,
            "polling did not resume"
        );
        let took = back.elapsed();
        assert!(took < Duration::from_secs(2), "resumed only after {took:?}");
        assert_eq!(
            io.modbus_bus("plc").expect("bus").status_now().state,
            ConnectionState::Connected
        );

        let mut changes = Vec::new();
        drain(&mut rx, &mut changes);
        let answer: Vec<(Option<Value>, Quality)> = changes
            .iter()
            .filter(|c| &*c.tag == "answer")
            .map(|c| (c.value, c.quality))
            .collect();
        assert_eq!(
            answer,
            vec![
                (Some(Value::UInt(42)), Quality::Good),
                (None, Quality::Bad),
                (Some(Value::UInt(42)), Quality::Good),
            ]
        );
        let bad = changes
            .iter()
            .find(|c| c.quality == Quality::Bad && &*c.tag == "answer")
            .expect("a bad record");
        assert_eq!(bad.previous, Some(Value::UInt(42)));
        assert!(bad.error.is_some());
        // Sequence numbers are gapless when nothing overflowed.
        for pair in changes.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        assert_eq!(poller.stats().changes_dropped, 0);
        io.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_makes_a_point_bad_without_touching_the_connection() {
    bounded(Duration::from_secs(30), async {
        let port = free_port();
        let _peer = tcp_peer(port).await;
        let spec = IoSpec {
            buses: vec![tcp_spec("plc", port, Duration::from_millis(300))],
            points: vec![
                point("ok", "plc", Table::Holding, 0, DataType::U16),
                point("missing", "plc", Table::Holding, 150, DataType::U16),
            ],
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start io");
        let poller = io.poller();
        assert!(
            eventually(Duration::from_secs(5), || {
                poller.point("ok").map(|p| p.quality) == Some(Quality::Good)
                    && poller
                        .point("missing")
                        .and_then(|p| p.error)
                        .is_some_and(|e| e.contains("illegal data address"))
            })
            .await
        );
        let missing = poller.point("missing").expect("point");
        assert_eq!(missing.quality, Quality::Bad);
        let status = io.modbus_bus("plc").expect("bus").status_now();
        assert_eq!(status.counters.transport_errors, 0);
        assert!(status.counters.exceptions > 0);
    })
    .await;
}

/// A device that accepts connections but never answers must only delay its
/// own bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_device_does_not_block_other_bus() {
    bounded(Duration::from_secs(30), async {
        let port = free_port();
        let _peer = tcp_peer(port).await;
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent_port = silent.local_addr().expect("addr").port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = silent.accept().await {
                held.push(sock);
            }
        });
        let spec = IoSpec {
            buses: vec![
                tcp_spec("fast", port, Duration::from_millis(300)),
                tcp_spec("stuck", silent_port, Duration::from_secs(2)),
            ],
            points: vec![
                point("counter", "fast", Table::Input, 0, DataType::U16),
                point("frozen", "stuck", Table::Holding, 0, DataType::U16),
            ],
            ..IoSpec::default()
        };
        let (io, mut rx) = Io::start(spec).expect("start io");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut changes = Vec::new();
        drain(&mut rx, &mut changes);
        let counter_updates = changes.iter().filter(|c| &*c.tag == "counter").count();
        // The counter ticks every 100 ms and is polled every 100 ms.
        assert!(
            counter_updates >= 6,
            "only {counter_updates} counter updates"
        );
        let frozen = io.poller().point("frozen").expect("point");
        assert_eq!(frozen.quality, Quality::Bad);
        hold.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_by_tag_goes_to_the_device_and_respects_read_only() {
    bounded(Duration::from_secs(30), async {
        let port = free_port();
        let _peer = tcp_peer(port).await;
        let mut speed = point("speed", "plc", Table::Holding, 20, DataType::F32);
        speed.encoding.scale = 0.5;
        let mut locked = point("locked", "plc", Table::Holding, 30, DataType::U16);
        locked.read_only = true;
        let spec = IoSpec {
            buses: vec![tcp_spec("plc", port, Duration::from_millis(300))],
            points: vec![
                speed,
                locked,
                point("lamp", "plc", Table::Coil, 9, DataType::Bool),
                point("sensor", "plc", Table::Input, 1, DataType::U16),
                point("total", "plc", Table::Holding, 40, DataType::I32),
            ],
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start io");
        let writer = io.poller().writer("script-a");
        writer
            .write("speed", Value::Float(3.0))
            .await
            .expect("write speed");
        writer
            .write("lamp", Value::Bool(true))
            .await
            .expect("write lamp");
        writer
            .write("total", Value::Int(-70000))
            .await
            .expect("write total");
        assert_eq!(writer.read("speed").await, Ok(Value::Float(3.0)));
        assert_eq!(writer.read("lamp").await, Ok(Value::Bool(true)));
        assert_eq!(writer.read("total").await, Ok(Value::Int(-70000)));
        // 3.0 / 0.5 = 6.0f32 = 0x40C0_0000, high word first.
        let bus = io.modbus_bus("plc").expect("bus");
        let mut raw = bus.client("check", 4);
        assert_eq!(
            raw.read_holding_registers(1, 20, 2).await,
            Ok(Ok(vec![0x40C0, 0x0000]))
        );
        assert_eq!(
            writer.write("locked", Value::UInt(1)).await,
            Err(WriteError::ReadOnly("locked".into()))
        );
        assert_eq!(
            writer.write("sensor", Value::UInt(1)).await,
            Err(WriteError::ReadOnly("sensor".into()))
        );
        assert_eq!(
            writer.write("nope", Value::UInt(1)).await,
            Err(WriteError::UnknownTag("nope".into()))
        );
        assert!(
            eventually(Duration::from_secs(3), || {
                io.poller().point("speed").and_then(|p| p.value) == Some(Value::Float(3.0))
            })
            .await
        );
    })
    .await;
}

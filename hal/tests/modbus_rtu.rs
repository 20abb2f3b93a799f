//! Modbus RTU over a socat pty pair against a pymodbus serial server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Peer, PtyPair, bounded, eventually};
use vwed_hal::{
    Bus, BusKind, BusSpec, DataType, Encoding, Exception, Io, IoSpec, MasterConfig, ModbusBus,
    ModbusRequest, PointSpec, Quality, RegisterBus, Request, Response, RtuConnector,
    SerialSettings, Table, Value,
};

async fn rtu_peer(pty: &PtyPair) -> Peer {
    Peer::python("modbus_server.py", &["rtu", &pty.theirs]).await
}

fn rtu_bus(pty: &PtyPair) -> ModbusBus {
    let mut connector = RtuConnector::new(SerialSettings::new(pty.ours.clone(), 19200));
    connector.request_timeout = Duration::from_millis(500);
    Bus::spawn("rs485", connector, MasterConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_reads_writes_and_exceptions() {
    bounded(Duration::from_secs(30), async {
        let pty = PtyPair::new().await;
        let _peer = rtu_peer(&pty).await;
        let bus = rtu_bus(&pty);
        let mut c = bus.client("test", 8);
        assert_eq!(
            c.read_holding_registers(1, 0, 4).await,
            Ok(Ok(vec![1234, 0x3FC0, 0x0000, 0xFFFE]))
        );
        assert_eq!(c.read_holding_registers(2, 0, 1).await, Ok(Ok(vec![2234])));
        assert_eq!(c.write_single_register(2, 5, 99).await, Ok(Ok(())));
        assert_eq!(c.read_holding_registers(2, 5, 1).await, Ok(Ok(vec![99])));
        assert_eq!(c.read_coils(1, 0, 3).await, Ok(Ok(vec![true, false, true])));
        assert_eq!(
            c.read_input_registers(1, 120, 1).await,
            Ok(Err(Exception::IllegalDataAddress))
        );
        let status = bus.status_now();
        assert_eq!(status.counters.transport_errors, 0);
        assert_eq!(status.counters.exceptions, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_writing_concurrently_through_one_line_are_both_served() {
    bounded(Duration::from_secs(60), async {
        let pty = PtyPair::new().await;
        let _peer = rtu_peer(&pty).await;
        let bus = rtu_bus(&pty);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, base) in [("script-a", 20u16), ("script-b", 50u16)] {
            let client = Arc::new(bus.client(name, 32));
            for i in 0..12u16 {
                let client = Arc::clone(&client);
                let order = Arc::clone(&order);
                tasks.push(tokio::spawn(async move {
                    let request = ModbusRequest {
                        unit: 1,
                        request: Request::WriteSingleRegister {
                            addr: base + i,
                            value: 1000 + i,
                        },
                    };
                    let result = client.submit(request).await;
                    order.lock().expect("lock").push(name);
                    result
                }));
            }
        }
        for task in tasks {
            assert_eq!(task.await.expect("join"), Ok(Ok(Response::Written)));
        }
        let order = order.lock().expect("lock").clone();
        assert_eq!(order.len(), 24);
        // Round robin: neither script waits for the other's whole batch.
        let first_half = &order[..12];
        let a = first_half.iter().filter(|n| **n == "script-a").count();
        assert!((4..=8).contains(&a), "unfair service order {order:?}");
        let mut check = bus.client("check", 4);
        let expected: Vec<u16> = (0..12).map(|i| 1000 + i).collect();
        assert_eq!(
            check.read_holding_registers(1, 20, 12).await,
            Ok(Ok(expected.clone()))
        );
        assert_eq!(
            check.read_holding_registers(1, 50, 12).await,
            Ok(Ok(expected))
        );
    })
    .await;
}

/// RTU frames carry no transaction id: a reply that arrives after its
/// request timed out has the same unit and function code as the next read
/// of that unit and would be returned as its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rtu_reply_is_not_taken_as_the_next_answer() {
    bounded(Duration::from_secs(30), async {
        let pty = PtyPair::new().await;
        let _peer = rtu_peer(&pty).await;
        let mut connector = RtuConnector::new(SerialSettings::new(pty.ours.clone(), 19200));
        connector.request_timeout = Duration::from_millis(300);
        let bus = Bus::spawn("rs485", connector, MasterConfig::default());
        let mut c = bus.client("test", 4);
        assert_eq!(c.write_single_coil(1, 98, true).await, Ok(Ok(())));
        assert_eq!(
            c.read_holding_registers(1, 50, 2).await,
            Err(vwed_hal::HalError::Timeout(Duration::from_millis(300)))
        );
        // The late [5050, 5051] lands in our input buffer meanwhile.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            c.read_holding_registers(1, 0, 2).await,
            Ok(Ok(vec![1234, 0x3FC0]))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_polling_recovers_after_peer_restart() {
    bounded(Duration::from_secs(60), async {
        let pty = PtyPair::new().await;
        let peer = rtu_peer(&pty).await;
        let spec = IoSpec {
            buses: vec![BusSpec {
                name: "rs485".into(),
                kind: BusKind::ModbusRtu {
                    serial: SerialSettings::new(pty.ours.clone(), 19200),
                    request_timeout: Duration::from_millis(300),
                },
            }],
            points: vec![PointSpec {
                tag: "temp".into(),
                bus: "rs485".into(),
                unit: 2,
                table: Table::Holding,
                address: 1,
                encoding: Encoding::plain(DataType::F32),
                period: Duration::from_millis(100),
                deadband: 0.0,
                read_only: false,
            }],
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start");
        let poller = io.poller();
        let good = || poller.point("temp").map(|p| p.quality) == Some(Quality::Good);
        assert!(eventually(Duration::from_secs(5), good).await);
        assert_eq!(
            poller.point("temp").and_then(|p| p.value),
            Some(Value::Float(1.5))
        );
        peer.kill().await;
        assert!(eventually(Duration::from_secs(5), || !good()).await);
        let _peer = rtu_peer(&pty).await;
        let back = Instant::now();
        assert!(
            eventually(Duration::from_secs(5), good).await,
            "did not recover"
        );
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "took {:?}",
            back.elapsed()
        );
        io.shutdown();
    })
    .await;
}

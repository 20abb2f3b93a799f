//! Bus master and poller behaviour against the in-memory simulated device.
//! No external peers needed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bounded, eventually};
use vwed_hal::{
    Bus, BusKind, BusSpec, ConnectionState, DataType, Encoding, HalError, Io, IoSpec, MasterConfig,
    ModbusBus, ModbusRequest, PointSpec, PollerConfig, Quality, RegisterBus, Request, Response,
    SimDevice, Table, Value,
};

fn sim_with_unit() -> SimDevice {
    let sim = SimDevice::new();
    sim.add_unit(1, 200);
    sim
}

fn sim_bus(sim: &SimDevice) -> ModbusBus {
    Bus::spawn(
        "sim",
        sim.connector(Duration::from_millis(300)),
        MasterConfig::default(),
    )
}

fn sim_spec(name: &str, sim: &SimDevice, request_timeout: Duration) -> BusSpec {
    BusSpec {
        name: name.into(),
        kind: BusKind::Sim {
            device: sim.clone(),
            request_timeout,
        },
    }
}

fn point(tag: &str, bus: &str, address: u16, dt: DataType) -> PointSpec {
    PointSpec {
        tag: tag.into(),
        bus: bus.into(),
        unit: 1,
        table: Table::Holding,
        address,
        encoding: Encoding::plain(dt),
        period: Duration::from_millis(50),
        deadband: 0.0,
        read_only: false,
    }
}

fn read(addr: u16) -> ModbusRequest {
    ModbusRequest {
        unit: 1,
        request: Request::ReadHoldingRegisters { addr, count: 1 },
    }
}

/// Field complaint: queues that freeze. A full queue must answer at once.
#[tokio::test]
async fn full_client_queue_is_an_immediate_error_not_a_stall() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        sim.set_latency(Duration::from_millis(100));
        let bus = sim_bus(&sim);
        let client = Arc::new(bus.client("greedy", 2));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let client = Arc::clone(&client);
            tasks.push(tokio::spawn(async move { client.submit(read(i)).await }));
        }
        let mut full = 0;
        for task in tasks {
            match task.await.expect("join") {
                Ok(Ok(Response::Words(_))) => {}
                Err(HalError::QueueFull {
                    client, capacity, ..
                }) => {
                    assert_eq!((client.as_str(), capacity), ("greedy", 2));
                    full += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(full >= 1);
        assert_eq!(bus.status_now().counters.rejected_queue_full, full);
    })
    .await;
}

#[tokio::test]
async fn a_busy_client_cannot_starve_another() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        sim.set_latency(Duration::from_millis(20));
        let bus = sim_bus(&sim);
        let busy = Arc::new(bus.client("poller", 64));
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..30 {
            let busy = Arc::clone(&busy);
            let served = Arc::clone(&served);
            tasks.push(tokio::spawn(async move {
                let r = busy.submit(read(i)).await;
                served.lock().expect("lock").push("busy");
                r
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut script = bus.client("script", 4);
        let started = Instant::now();
        assert!(matches!(
            script.read_holding_registers(1, 0, 1).await,
            Ok(Ok(_))
        ));
        let waited = started.elapsed();
        // Served after at most the request in flight plus one of the busy
        // client's (about 40 ms), not after the ~28 still queued (~560 ms).
        assert!(waited < Duration::from_millis(250), "waited {waited:?}");
        for task in tasks {
            assert!(matches!(task.await.expect("join"), Ok(Ok(_))));
        }
    })
    .await;
}

#[tokio::test]
async fn unreachable_device_goes_bad_then_recovers_within_two_seconds() {
    bounded(Duration::from_secs(20), async {
        let sim = sim_with_unit();
        sim.set_words(1, Table::Holding, 0, &[7]);
        let spec = IoSpec {
            buses: vec![sim_spec("sim", &sim, Duration::from_millis(200))],
            points: vec![point("level", "sim", 0, DataType::U16)],
            ..IoSpec::default()
        };
        let (io, mut rx) = Io::start(spec).expect("start");
        let poller = io.poller();
        let quality = || poller.point("level").map(|p| p.quality);
        assert!(eventually(Duration::from_secs(2), || quality() == Some(Quality::Good)).await);

        sim.set_reachable(false);
        assert!(eventually(Duration::from_secs(2), || quality() == Some(Quality::Bad)).await);
        // Stay down long enough for the backoff to reach its cap.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let status = io.modbus_bus("sim").expect("bus").status_now();
        assert_eq!(status.state, ConnectionState::Disconnected);
        assert!(status.last_error.is_some());
        assert!(status.counters.connect_failures >= 3);

        sim.set_reachable(true);
        let back = Instant::now();
        assert!(eventually(Duration::from_secs(3), || quality() == Some(Quality::Good)).await);
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "took {:?}",
            back.elapsed()
        );

        let mut qualities = Vec::new();
        while let Ok(change) = rx.try_recv() {
            qualities.push(change.quality);
        }
        assert_eq!(qualities, vec![Quality::Good, Quality::Bad, Quality::Good]);
    })
    .await;
}

#[tokio::test]
async fn deadband_suppresses_small_changes() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        sim.set_words(1, Table::Holding, 0, &[100]);
        let mut p = point("temp", "sim", 0, DataType::U16);
        p.deadband = 5.0;
        let spec = IoSpec {
            buses: vec![sim_spec("sim", &sim, Duration::from_millis(200))],
            points: vec![p],
            ..IoSpec::default()
        };
        let (io, mut rx) = Io::start(spec).expect("start");
        let first = rx.recv().await.expect("first change");
        assert_eq!(first.value, Some(Value::UInt(100)));
        sim.set_words(1, Table::Holding, 0, &[103]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(rx.try_recv().is_err(), "3 < deadband must not emit");
        // The table still shows the latest reading.
        assert_eq!(
            io.poller().point("temp").and_then(|p| p.value),
            Some(Value::UInt(103))
        );
        sim.set_words(1, Table::Holding, 0, &[106]);
        let next = rx.recv().await.expect("change");
        assert_eq!(next.value, Some(Value::UInt(106)));
        assert_eq!(next.previous, Some(Value::UInt(100)));
    })
    .await;
}

/// Field complaint: events dropped silently under load.
#[tokio::test]
async fn change_overflow_is_counted_and_visible_in_sequence_numbers() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        let points: Vec<_> = (0..10)
            .map(|i| point(&format!("p{i}"), "sim", i, DataType::U16))
            .collect();
        let spec = IoSpec {
            buses: vec![sim_spec("sim", &sim, Duration::from_millis(200))],
            points,
            poller: PollerConfig {
                change_capacity: 3,
                ..PollerConfig::default()
            },
            ..IoSpec::default()
        };
        let (io, mut rx) = Io::start(spec).expect("start");
        let poller = io.poller();
        assert!(
            eventually(Duration::from_secs(2), || poller.stats().changes_dropped
                >= 7)
            .await
        );
        let stats = poller.stats();
        assert_eq!(stats.changes_emitted, 3);
        let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        // After the consumer catches up, the next record shows the gap.
        sim.set_words(1, Table::Holding, 0, &[9]);
        let next = rx.recv().await.expect("change");
        assert!(next.seq >= 10, "seq {} hides the gap", next.seq);
        // Every point's current value is still available.
        assert!(poller.snapshot().iter().all(|p| p.quality == Quality::Good));
    })
    .await;
}

#[tokio::test]
async fn contiguous_points_cost_one_request_per_cycle() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        let mut points: Vec<_> = (0..20)
            .map(|i| point(&format!("p{i}"), "sim", i * 2, DataType::F32))
            .collect();
        for p in &mut points {
            p.period = Duration::from_millis(500);
        }
        let spec = IoSpec {
            buses: vec![sim_spec("sim", &sim, Duration::from_millis(200))],
            points,
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start");
        assert!(
            eventually(Duration::from_secs(2), || {
                io.poller()
                    .snapshot()
                    .iter()
                    .all(|p| p.quality == Quality::Good)
            })
            .await
        );
        assert_eq!(sim.requests(), 1);
    })
    .await;
}

#[tokio::test]
async fn slow_sim_bus_does_not_delay_fast_sim_bus() {
    bounded(Duration::from_secs(10), async {
        let fast = sim_with_unit();
        let slow = sim_with_unit();
        slow.set_latency(Duration::from_secs(5));
        let spec = IoSpec {
            buses: vec![
                sim_spec("fast", &fast, Duration::from_millis(200)),
                sim_spec("slow", &slow, Duration::from_secs(1)),
            ],
            points: vec![
                point("quick", "fast", 0, DataType::U16),
                point("sluggish", "slow", 0, DataType::U16),
            ],
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for v in 1..=5u16 {
            fast.set_words(1, Table::Holding, 0, &[v]);
            let want = Some(Value::UInt(u64::from(v)));
            assert!(
                eventually(Duration::from_millis(600), || {
                    io.poller().point("quick").and_then(|p| p.value) == want
                })
                .await,
                "fast bus fell behind at {v}"
            );
        }
        assert_eq!(
            io.poller().point("sluggish").map(|p| p.quality),
            Some(Quality::Bad)
        );
    })
    .await;
}

#[tokio::test]
async fn writes_through_tag_writer_reach_the_sim() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        let mut coil = point("run", "sim", 3, DataType::Bool);
        coil.table = Table::Coil;
        let spec = IoSpec {
            buses: vec![sim_spec("sim", &sim, Duration::from_millis(200))],
            points: vec![point("target", "sim", 10, DataType::U32), coil],
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start");
        let writer = io.poller().writer("script");
        writer
            .write("target", Value::UInt(70_000))
            .await
            .expect("write");
        writer.write("run", Value::Bool(true)).await.expect("write");
        assert_eq!(sim.words(1, Table::Holding, 10, 2), Some(vec![1, 4464]));
        assert_eq!(sim.bits(1, Table::Coil, 3, 1), Some(vec![true]));
    })
    .await;
}

/// One unit that never answers on a shared line must not take its
/// neighbours down or make the bus status flap.
#[tokio::test]
async fn silent_unit_on_a_shared_bus_leaves_the_other_units_good() {
    bounded(Duration::from_secs(10), async {
        let sim = sim_with_unit();
        let mut ghost = point("ghost", "sim", 0, DataType::U16);
        ghost.unit = 9;
        let spec = IoSpec {
            buses: vec![sim_spec("sim", &sim, Duration::from_millis(100))],
            points: vec![point("alive", "sim", 0, DataType::U16), ghost],
            ..IoSpec::default()
        };
        let (io, _rx) = Io::start(spec).expect("start");
        let bus = io.modbus_bus("sim").expect("bus");
        let mut status = bus.status();
        let poller = io.poller();
        for v in 1..=5u16 {
            sim.set_words(1, Table::Holding, 0, &[v]);
            let want = Some(Value::UInt(u64::from(v)));
            assert!(
                eventually(Duration::from_millis(600), || {
                    poller.point("alive").and_then(|p| p.value) == want
                })
                .await
            );
        }
        assert_eq!(poller.point("ghost").map(|p| p.quality), Some(Quality::Bad));
        let now = status.borrow_and_update().clone();
        assert_eq!(now.state, ConnectionState::Connected);
        assert!(now.counters.timeouts >= 3);
        assert_eq!(now.counters.connect_failures, 0);
    })
    .await;
}

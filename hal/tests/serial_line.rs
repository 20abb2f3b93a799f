//! The serial line device against a line-echo peer on a pty.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Peer, PtyPair, bounded};
use vwed_hal::{
    Bus, ConnectionState, HalError, LineBus, LineConnector, LineDevice, MasterConfig,
    SerialSettings,
};

fn line_bus(pty: &PtyPair, timeout: Duration) -> LineBus {
    let connector = LineConnector {
        serial: SerialSettings::new(pty.ours.clone(), 115200),
        terminator: b"\r\n".to_vec(),
        timeout,
    };
    Bus::spawn("robot", connector, MasterConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_gets_the_matching_reply() {
    bounded(Duration::from_secs(30), async {
        let pty = PtyPair::new().await;
        let _peer = Peer::python("line_echo.py", &[&pty.theirs]).await;
        let bus = line_bus(&pty, Duration::from_millis(500));
        let mut robot = bus.client("script", 4);
        assert_eq!(robot.request("STATUS").await, Ok("ECHO STATUS".to_owned()));
        assert_eq!(
            robot.request("GOTO 3 4").await,
            Ok("ECHO GOTO 3 4".to_owned())
        );
        assert!(matches!(
            robot.request("BAD\r\nLINE").await,
            Err(HalError::InvalidRequest(_))
        ));
    })
    .await;
}

/// A late answer to a timed-out request must not be taken as the answer to
/// the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reply_after_timeout_is_not_mistaken_for_the_next_answer() {
    bounded(Duration::from_secs(30), async {
        let pty = PtyPair::new().await;
        let _peer = Peer::python("line_echo.py", &[&pty.theirs]).await;
        let bus = line_bus(&pty, Duration::from_millis(300));
        let mut robot = bus.client("script", 4);
        assert_eq!(
            robot.request("QUIET").await,
            Err(HalError::Timeout(Duration::from_millis(300)))
        );
        assert_eq!(
            robot.request("SLOW 600").await,
            Err(HalError::Timeout(Duration::from_millis(300)))
        );
        // Let the late "ECHO SLOW 600" arrive before asking again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(robot.request("PING").await, Ok("ECHO PING".to_owned()));
        let status = bus.status_now();
        assert_eq!(status.counters.timeouts, 2);
        assert_eq!(status.state, ConnectionState::Connected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_each_get_their_own_reply() {
    bounded(Duration::from_secs(30), async {
        let pty = PtyPair::new().await;
        let _peer = Peer::python("line_echo.py", &[&pty.theirs]).await;
        let bus = line_bus(&pty, Duration::from_millis(500));
        let mut tasks = Vec::new();
        for name in ["a", "b", "c"] {
            let client = Arc::new(bus.client(name, 16));
            for i in 0..5 {
                let client = Arc::clone(&client);
                tasks.push(tokio::spawn(async move {
                    let line = format!("{name}{i}");
                    let reply = client
                        .submit(vwed_hal::LineRequest {
                            line: line.clone(),
                            expect_reply: true,
                        })
                        .await;
                    (line, reply)
                }));
            }
        }
        for task in tasks {
            let (line, reply) = task.await.expect("join");
            assert_eq!(reply, Ok(Some(format!("ECHO {line}"))));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_port_reports_disconnected_and_keeps_retrying() {
    bounded(Duration::from_secs(30), async {
        let connector = LineConnector {
            serial: SerialSettings::new("/dev/vwed-no-such-port", 9600),
            terminator: b"\n".to_vec(),
            timeout: Duration::from_millis(100),
        };
        let bus: LineBus = Bus::spawn("robot", connector, MasterConfig::default());
        let mut status = bus.status();
        status
            .wait_for(|s| {
                s.state == ConnectionState::Disconnected && s.counters.connect_failures >= 3
            })
            .await
            .expect("status");
        let mut client = bus.client("script", 4);
        assert!(matches!(
            client.request("X").await,
            Err(HalError::NotConnected { .. })
        ));
    })
    .await;
}

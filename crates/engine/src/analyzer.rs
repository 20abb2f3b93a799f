//! Syntax checks and `has_boot_function`, answered by Python's own parser.
//!
//! The supervisor hosts no interpreter, so an analyzer worker is started on first
//! use and kept while it is busy; it exits after a minute of idleness.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use vwed_ipc::{Analysis, FrameDecoder, FromWorker, ToWorker, encode};

use crate::worker::{SpawnedWorker, WorkerMode, spawn_worker};

const IDLE_EXIT: Duration = Duration::from_secs(60);
const ANALYZE_TIMEOUT: Duration = Duration::from_secs(15);
/// Parsing a bounded source never needs more; a pathological one fails instead.
const ANALYZER_MEMORY: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzerError {
    #[error("语法检查进程无法启动: {0}")]
    Spawn(std::io::Error),
    #[error("语法检查进程通信失败: {0}")]
    Io(#[from] std::io::Error),
    #[error("语法检查超时")]
    Timeout,
    #[error("语法检查进程应答错误: {0}")]
    Protocol(String),
}

struct Proc {
    worker: SpawnedWorker,
    dec: FrameDecoder,
    next_req: u64,
    last_used: Instant,
}

#[derive(Clone)]
pub struct Analyzer {
    exe: PathBuf,
    proc: Arc<Mutex<Option<Proc>>>,
}

impl Analyzer {
    pub fn new(exe: PathBuf) -> Self {
        let a = Analyzer {
            exe,
            proc: Arc::new(Mutex::new(None)),
        };
        let weak = Arc::downgrade(&a.proc);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE_EXIT / 4).await;
                let Some(proc) = weak.upgrade() else { return };
                let mut g = proc.lock().await;
                if g.as_ref()
                    .is_some_and(|p| p.last_used.elapsed() > IDLE_EXIT)
                    && let Some(mut p) = g.take()
                {
                    let _ = p.worker.child.start_kill();
                    let _ = p.worker.child.wait().await;
                }
            }
        });
        a
    }

    /// What a save learns about a source. `has_boot_function` comes from
    /// Python's parser when the code parses. When it does not (people save
    /// half-written code), it comes from [`vwed_store::sources::defines_boot`]: a file whose `boot()`
    /// is there, with a typo further down, still counts as having one, as its
    /// author expects, and the stored flag and `files/search?has_boot=` stay a
    /// plain yes or no.
    pub async fn check_saved(&self, source: &str) -> Result<Analysis, AnalyzerError> {
        let mut a = self.analyze(source).await?;
        if a.syntax_error.is_some() {
            a.has_boot_function = vwed_store::sources::defines_boot(source);
        }
        Ok(a)
    }

    pub async fn analyze(&self, source: &str) -> Result<Analysis, AnalyzerError> {
        let mut g = self.proc.lock().await;
        // One retry: an idle analyzer may have been killed or died since last use.
        for attempt in 0..2 {
            if g.is_none() {
                let worker =
                    spawn_worker(&self.exe, WorkerMode::Analyzer, None, Some(ANALYZER_MEMORY))
                        .map_err(AnalyzerError::Spawn)?;
                *g = Some(Proc {
                    worker,
                    dec: FrameDecoder::new(),
                    next_req: 1,
                    last_used: Instant::now(),
                });
            }
            let Some(p) = g.as_mut() else { continue };
            match tokio::time::timeout(ANALYZE_TIMEOUT, ask(p, source)).await {
                Ok(Ok(a)) => {
                    p.last_used = Instant::now();
                    return Ok(a);
                }
                Ok(Err(e)) => {
                    if let Some(mut dead) = g.take() {
                        let _ = dead.worker.child.start_kill();
                    }
                    if attempt == 1 {
                        return Err(e);
                    }
                }
                Err(_) => {
                    if let Some(mut dead) = g.take() {
                        let _ = dead.worker.child.start_kill();
                    }
                    return Err(AnalyzerError::Timeout);
                }
            }
        }
        Err(AnalyzerError::Protocol("no answer".into()))
    }
}

async fn ask(p: &mut Proc, source: &str) -> Result<Analysis, AnalyzerError> {
    let req = p.next_req;
    p.next_req += 1;
    let frame = encode(&ToWorker::Analyze {
        req,
        source: source.to_string(),
    })
    .map_err(|e| AnalyzerError::Protocol(e.to_string()))?;
    p.worker.stream.write_all(&frame).await?;
    loop {
        while let Some(msg) = p
            .dec
            .next_frame::<FromWorker>()
            .map_err(|e| AnalyzerError::Protocol(e.to_string()))?
        {
            if let FromWorker::Analysis { req: r, analysis } = msg
                && r == req
            {
                return Ok(analysis);
            }
        }
        let spare = p.dec.spare(16 * 1024);
        let n = p.worker.stream.read(spare).await?;
        p.dec.commit(n);
        if n == 0 {
            return Err(AnalyzerError::Protocol("analyzer exited".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use vwed_store::sources::defines_boot;

    #[test]
    fn boot_found_by_its_line_when_the_code_does_not_parse() {
        assert!(defines_boot("import x\ndef boot():\n    pass\nif (:\n"));
        assert!(defines_boot("async def boot():\n    pass\n"));
        assert!(defines_boot("def  boot (params):\n"));
        assert!(defines_boot("async\tdef\tboot():\n"));
        // Nested, renamed, or not a definition at all.
        assert!(!defines_boot("class A:\n    def boot(self):\n"));
        assert!(!defines_boot("def boot_all():\n"));
        assert!(!defines_boot("def booted():\n"));
        assert!(!defines_boot("# def boot():\n"));
        assert!(!defines_boot("undef boot():\n"));
        assert!(!defines_boot("asyncdef boot():\n"));
        assert!(!defines_boot("defboot():\n"));
    }
}

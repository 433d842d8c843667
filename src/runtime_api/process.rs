//! Function processes: spawned in their own process group (so a function's
//! own children die with it), their stdout/stderr streamed line by line to
//! the gateway log prefixed with the function name and the request id being
//! served, and the tail of each invocation's output kept for
//! `X-Amz-Log-Type: Tail`. Stopping a process signals its whole group.
//!
//! Function process groups also end when the gateway dies without stopping
//! them (SIGKILL, a crash): each group is registered with a small reaper
//! process (`sh`, in a process group of its own) that holds the read end of
//! a pipe only the gateway writes to. The kernel closes that pipe whatever
//! ends the gateway; at end of file the reaper kills every group still
//! registered. A parent-death signal would reach only each group's leader
//! (and fires when the forking *thread* ends), so it is not used.
//!
//! A process with a memory limit (the function's `memory_size`) is watched
//! as Lambda's sandbox would hold it: every [`MEMORY_CHECK_INTERVAL`] the
//! resident memory of the process and its descendants is summed, the peak
//! kept for the `REPORT` line, and a group past the limit is killed.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

/// The last bytes of an invocation's log kept for `X-Amz-Log-Result` (AWS: 4 KB).
pub const LOG_TAIL_BYTES: usize = 4096;

/// How often a process's resident memory is measured against its limit.
pub const MEMORY_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub function: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Resident memory (bytes) the process and its descendants may use
    /// together; past it the group is killed.
    pub memory_limit: Option<u64>,
}

/// The output of one process, attributed to the invocation it serves.
pub struct ProcessLog {
    function: String,
    state: Mutex<LogState>,
    /// Lets a caller wait until the readers consumed what is already in the pipes.
    flushers: Mutex<Vec<mpsc::UnboundedSender<oneshot::Sender<()>>>>,
}

#[derive(Default)]
struct LogState {
    request_id: Option<String>,
    tail: String,
}

impl ProcessLog {
    pub fn new(function: &str) -> Self {
        Self {
            function: function.to_string(),
            state: Mutex::new(LogState::default()),
            flushers: Mutex::new(Vec::new()),
        }
    }

    /// An invocation starts: later lines belong to it.
    pub fn begin(&self, request_id: &str) {
        let mut s = lock(&self.state);
        s.request_id = Some(request_id.to_string());
        s.tail.clear();
        push_tail(
            &mut s.tail,
            &format!("START RequestId: {request_id} Version: $LATEST\n"),
        );
    }

    /// An invocation ended: returns its log tail (with AWS's END/REPORT lines).
    pub fn end(&self, report: &str) -> String {
        let mut s = lock(&self.state);
        if let Some(id) = s.request_id.take() {
            let lines = format!("END RequestId: {id}\nREPORT RequestId: {id}\t{report}\n");
            push_tail(&mut s.tail, &lines);
        }
        std::mem::take(&mut s.tail)
    }

    fn line(&self, stream: &'static str, line: &str) {
        let mut s = lock(&self.state);
        let request_id = s.request_id.clone().unwrap_or_else(|| "-".to_string());
        push_tail(&mut s.tail, line);
        push_tail(&mut s.tail, "\n");
        drop(s);
        tracing::info!(
            target: "lambdagate::function",
            function = %self.function,
            request_id = %request_id,
            stream,
            "[{} {}] {}",
            self.function,
            request_id,
            line
        );
    }

    /// Waits (briefly) until both readers consumed what the pipes already hold.
    pub async fn flush(&self) {
        let flushers = lock(&self.flushers).clone();
        let mut acks = Vec::new();
        for f in flushers {
            let (tx, rx) = oneshot::channel();
            if f.send(tx).is_ok() {
                acks.push(rx);
            }
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(100), futures::future::join_all(acks)).await;
    }

    fn attach<R: AsyncRead + Unpin + Send + 'static>(
        self: &std::sync::Arc<Self>,
        stream: &'static str,
        reader: R,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
        lock(&self.flushers).push(tx);
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(l)) => log.line(stream, &l),
                        _ => break,
                    },
                    Some(ack) = rx.recv() => {
                        // Take whatever is readable now, then answer.
                        while let Some(Ok(Some(l))) = lines.next_line().now_or_never() {
                            log.line(stream, &l);
                        }
                        let _ = ack.send(());
                    }
                }
            }
        });
    }
}

/// Keeps the last [`LOG_TAIL_BYTES`] of `tail`.
fn push_tail(tail: &mut String, text: &str) {
    tail.push_str(text);
    if tail.len() > LOG_TAIL_BYTES {
        let mut cut = tail.len() - LOG_TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
}

/// The reaper's script: `+ PGID` registers a group, `- PGID` forgets one
/// that ended; at end of input (the gateway is gone) every group left is
/// killed. Signals meant for the gateway (Ctrl-C, SIGTERM) are ignored:
/// only the end of the pipe ends the reaper.
const REAPER_SCRIPT: &str = r#"trap '' INT TERM HUP QUIT
groups=" "
while read -r op pgid; do
  case "$pgid" in ''|*[!0-9]*) continue ;; esac
  case "$op" in
    +) groups="$groups$pgid " ;;
    -) case "$groups" in *" $pgid "*) groups="${groups%% $pgid *} ${groups#* $pgid }" ;; esac ;;
  esac
done
for g in $groups; do kill -9 "-$g" 2>/dev/null; done
"#;

/// The write end of the reaper's pipe, started with the first function
/// process. `None` after a failure to start or write: function processes
/// then still end with a graceful shutdown, and a warning says the rest.
fn reaper() -> &'static Mutex<Option<std::process::ChildStdin>> {
    static REAPER: std::sync::OnceLock<Mutex<Option<std::process::ChildStdin>>> =
        std::sync::OnceLock::new();
    REAPER.get_or_init(|| {
        let started = std::process::Command::new("sh")
            .args(["-c", REAPER_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match started {
            // The reaper is never waited for: it outlives the gateway by
            // design, and exits only when the gateway has gone.
            Ok(mut child) => Mutex::new(child.stdin.take()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the function reaper; function processes may outlive a killed gateway");
                Mutex::new(None)
            }
        }
    })
}

/// Tells the reaper that the group led by `pid` started (`+`) or ended (`-`).
fn tell_reaper(op: char, pid: u32) {
    use std::io::Write;
    let mut guard = lock(reaper());
    let Some(pipe) = guard.as_mut() else {
        return;
    };
    // One short line: a single atomic write to the pipe.
    if let Err(e) = pipe.write_all(format!("{op} {pid}\n").as_bytes()) {
        tracing::warn!(error = %e, "the function reaper is gone; function processes may outlive a killed gateway");
        *guard = None;
    }
}

/// A running function process (the leader of its own process group).
pub struct FunctionProcess {
    pid: u32,
    exit: watch::Receiver<Option<String>>,
    memory: std::sync::Arc<MemoryUse>,
}

/// What the memory watch saw of one process.
#[derive(Default)]
struct MemoryUse {
    /// The highest resident memory measured since [`FunctionProcess::reset_peak_memory`].
    peak: AtomicU64,
    /// The latest measurement.
    last: AtomicU64,
    /// Set when the group was killed for going past its limit.
    over_limit: AtomicBool,
}

impl FunctionProcess {
    /// Starts the process; its output goes to `log`.
    pub fn spawn(spec: &SpawnSpec, log: &std::sync::Arc<ProcessLog>) -> std::io::Result<Self> {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .current_dir(&spec.cwd)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        tell_reaper('+', pid);
        if let Some(out) = child.stdout.take() {
            log.attach("stdout", out);
        }
        if let Some(err) = child.stderr.take() {
            log.attach("stderr", err);
        }
        let (tx, exit) = watch::channel(None);
        let function = spec.function.clone();
        let memory = std::sync::Arc::new(MemoryUse::default());
        let watched = memory.clone();
        let limit = spec.memory_limit;
        tokio::spawn(async move {
            let waited = match limit {
                Some(limit) => {
                    let watch = watch_memory(pid, limit, &function, &watched);
                    tokio::select! {
                        status = child.wait() => status,
                        never = watch => match never {},
                    }
                }
                None => child.wait().await,
            };
            let status = match waited {
                Ok(s) => describe_exit(s),
                Err(e) => format!("unknown status ({e})"),
            };
            tracing::debug!(function = %function, pid, %status, "function process exited");
            // What the leader left running in its group goes with it (as
            // Lambda tears down an environment whose runtime exited); the
            // group's number is still reserved while any member lives.
            kill_group(pid);
            tell_reaper('-', pid);
            let _ = tx.send(Some(status));
        });
        Ok(Self { pid, exit, memory })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The highest resident memory (bytes) measured since the last reset;
    /// zero when the process has no memory limit (it is then not measured).
    pub fn peak_memory(&self) -> u64 {
        self.memory.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak from the latest measurement (an invocation begins).
    pub fn reset_peak_memory(&self) {
        let last = self.memory.last.load(Ordering::Relaxed);
        self.memory.peak.store(last, Ordering::Relaxed);
    }

    /// Whether the process was killed for going past its memory limit.
    pub fn out_of_memory(&self) -> bool {
        self.memory.over_limit.load(Ordering::Acquire)
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Resolves with the exit status when the process exits.
    pub async fn exited(&self) -> String {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(s) => s.clone().unwrap_or_default(),
            // The waiter task is gone: the runtime is shutting down.
            Err(_) => "unknown status".to_string(),
        }
    }

    /// Sends `signal` to the process's whole group.
    fn signal(&self, signal: rustix::process::Signal) {
        signal_group(self.pid, signal);
    }

    /// Kills the group now.
    pub fn kill(&self) {
        self.signal(rustix::process::Signal::KILL);
    }

    /// SIGTERM to the group, up to `grace` for the leader to exit, then
    /// SIGKILL to whatever is left of the group.
    pub async fn stop(&self, grace: Duration) {
        if self.exit_status().is_none() {
            self.signal(rustix::process::Signal::TERM);
            let _ = tokio::time::timeout(grace, self.exited()).await;
        }
        self.kill();
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        // A leader that was reaped may have its pid reused; only a live group is killed.
        if self.exit_status().is_none() {
            self.kill();
        }
    }
}

/// Sends `signal` to the process group led by `pid`; ESRCH (already gone)
/// is fine.
fn signal_group(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

fn kill_group(pid: u32) {
    signal_group(pid, rustix::process::Signal::KILL);
}

/// Measures the group led by `pid` every [`MEMORY_CHECK_INTERVAL`], keeps
/// the peak, and kills the group once it holds more than `limit` bytes.
/// Runs until dropped (the process exited).
async fn watch_memory(
    pid: u32,
    limit: u64,
    function: &str,
    seen: &MemoryUse,
) -> std::convert::Infallible {
    let mut tick = tokio::time::interval(MEMORY_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rss = resident_bytes(pid);
        seen.last.store(rss, Ordering::Relaxed);
        seen.peak.fetch_max(rss, Ordering::Relaxed);
        if rss > limit && !seen.over_limit.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                function = %function,
                pid,
                used_mb = rss >> 20,
                memory_size_mb = limit >> 20,
                "function process went past its memory_size; killing it"
            );
            metrics::counter!("lambdagate_local_out_of_memory_total", "function" => function.to_string())
                .increment(1);
            kill_group(pid);
        }
    }
}

/// Resident memory of `pid` and all its descendants, in bytes (what is
/// gone or unreadable counts as zero).
fn resident_bytes(pid: u32) -> u64 {
    let mut total = 0;
    let mut pending = vec![pid];
    // A bound on the walk, in case /proc changes under it.
    let mut budget = 4096;
    while let Some(p) = pending.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            total += vm_rss_kib(&status) * 1024;
        }
        // Children may be started by any thread of the process.
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                pending.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    total
}

/// The `VmRSS` line of a `/proc/PID/status` file, in KiB (0 when absent,
/// as for a zombie).
fn vm_rss_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// An exit status in the words Lambda uses in `Runtime exited with error: …`
/// (`exit status 1`, `signal: killed`).
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    let Some(signal) = status.signal() else {
        return status.to_string();
    };
    let name = match signal {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        10 => "user defined signal 1",
        11 => "segmentation fault",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        n => return format!("signal {n}"),
    };
    format!("signal: {name}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_4kb_on_a_char_boundary() {
        let mut t = String::new();
        push_tail(&mut t, &"é".repeat(3000));
        assert!(t.len() <= LOG_TAIL_BYTES);
        assert!(t.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_reaper_kills_the_groups_still_registered_when_its_pipe_ends() {
        use std::io::Write;
        let group = || {
            std::process::Command::new("sleep")
                .arg("30")
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let (mut kept, mut forgotten) = (group(), group());
        let mut reaper = std::process::Command::new("sh")
            .args(["-c", REAPER_SCRIPT])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = reaper.stdin.take().unwrap();
        let lines = format!(
            "+ {k}\n+ {f}\n+ junk\n- {f}\n",
            k = kept.id(),
            f = forgotten.id()
        );
        pipe.write_all(lines.as_bytes()).unwrap();
        drop(pipe);
        assert!(reaper.wait().unwrap().success());
        let killed = kept.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&killed),
            Some(9)
        );
        assert!(
            forgotten.try_wait().unwrap().is_none(),
            "a forgotten group is left alone"
        );
        forgotten.kill().unwrap();
        forgotten.wait().unwrap();
    }

    #[tokio::test]
    async fn output_is_attributed_and_the_group_is_killed() {
        let log = std::sync::Arc::new(ProcessLog::new("f"));
        log.begin("req-1");
        let spec = SpawnSpec {
            function: "f".into(),
            program: "sh".into(),
            args: vec!["-c".into(), "echo hi; sleep 30 & wait".into()],
            cwd: std::env::temp_dir(),
            env: vec![],
            memory_limit: None,
        };
        let p = FunctionProcess::spawn(&spec, &log).unwrap();
        let mut seen = String::new();
        for _ in 0..200 {
            log.flush().await;
            seen = lock(&log.state).tail.clone();
            if seen.contains("hi") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen.contains("START RequestId: req-1"), "{seen}");
        assert!(seen.contains("hi\n"), "{seen}");
        p.stop(Duration::from_secs(2)).await;
        assert!(p.exit_status().is_some());
        let tail = log.end("Duration: 1 ms");
        assert!(tail.contains("END RequestId: req-1"));
    }

    #[test]
    fn resident_memory_is_read_from_vm_rss() {
        assert_eq!(
            vm_rss_kib("Name:\tx\nVmRSS:\t   2048 kB\nVmSwap: 0 kB\n"),
            2048
        );
        assert_eq!(vm_rss_kib("Name:\tzombie\nState:\tZ\n"), 0);
        assert!(resident_bytes(std::process::id()) > 0);
    }

    #[test]
    fn exits_are_described_in_lambdas_words() {
        use std::os::unix::process::ExitStatusExt;
        let exit = |raw| describe_exit(std::process::ExitStatus::from_raw(raw));
        assert_eq!(exit(1 << 8), "exit status 1");
        assert_eq!(exit(0), "exit status 0");
        assert_eq!(exit(9), "signal: killed");
        assert_eq!(exit(11), "signal: segmentation fault");
        assert_eq!(exit(31), "signal 31");
    }

    #[tokio::test]
    async fn a_group_past_its_memory_limit_is_killed() {
        let log = std::sync::Arc::new(ProcessLog::new("f"));
        // The child (not the leader) touches 64 MB, so the sum over
        // descendants is what trips the 32 MB limit.
        let spec = SpawnSpec {
            function: "f".into(),
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "python3 -c 'import time; b = b\"x\" * (64 << 20); time.sleep(30)'; true".into(),
            ],
            cwd: std::env::temp_dir(),
            env: vec![],
            memory_limit: Some(32 << 20),
        };
        let p = FunctionProcess::spawn(&spec, &log).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), p.exited())
            .await
            .expect("killed well before the child's sleep ends");
        assert_eq!(status, "signal: killed");
        assert!(p.out_of_memory());
        assert!(p.peak_memory() > 32 << 20, "{}", p.peak_memory());
    }

    #[tokio::test]
    async fn a_group_within_its_limit_is_measured_and_left_alone() {
        let log = std::sync::Arc::new(ProcessLog::new("f"));
        let spec = SpawnSpec {
            function: "f".into(),
            program: "sh".into(),
            args: vec!["-c".into(), "sleep 0.5".into()],
            cwd: std::env::temp_dir(),
            env: vec![],
            memory_limit: Some(128 << 20),
        };
        let p = FunctionProcess::spawn(&spec, &log).unwrap();
        assert_eq!(p.exited().await, "exit status 0");
        assert!(!p.out_of_memory());
        assert!(p.peak_memory() > 0);
    }
}

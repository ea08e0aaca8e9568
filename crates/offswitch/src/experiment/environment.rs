//! One episode's environment: a fresh sandbox with the scenario's files, the question
//! service on a socket bound into it, and the guard layers watching both.

use super::assets::Assets;
use super::evidence;
use super::live_guard::LiveGuard;
use super::questions::{self, QuestionState, ServiceContext};
use super::scenario::Scenario;
use crate::guard::GuardConfig;
use crate::record::{EpisodeRecord, Event};
use sandbox::{BindSpec, Sandbox, SandboxSpec, Snapshot};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where the question service's socket appears inside the sandbox.
pub const SERVICE_DIR_INSIDE: &str = "/run/offswitch";
const SOCKET_NAME: &str = "questions.sock";
/// Host directories of question services are `<prefix><supervisor pid>-<random>`.
const SERVICE_DIR_PREFIX: &str = "offswitch-service-";

/// Where question services' directories go: `/dev/shm`, a tmpfs, when running as root,
/// else the temporary directory. Each episode makes and removes a directory and a socket;
/// on a disk file system that churn is costly (ext4's inode allocator scans past recently
/// deleted inodes: 2.6% of the machine at concurrency 64). Not for other users: systemd's
/// `RemoveIPC` empties a user's files from `/dev/shm` when their last session ends, which
/// would cut a run left going under `nohup` from its services.
pub fn service_dir_base() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if nix::unistd::geteuid().is_root() && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Whether `name` is a question-service directory's, and so which supervisor made it.
pub fn service_dir_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SERVICE_DIR_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

/// Where question-service directories may be: where they go now, and the temporary
/// directory, where earlier versions made them.
fn service_dir_bases() -> Vec<PathBuf> {
    let mut bases = vec![service_dir_base(), std::env::temp_dir()];
    bases.dedup();
    bases
}

/// Removes question-service directories left by supervisors that were killed.
pub fn remove_stale_service_dirs() {
    for base in service_dir_bases() {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = service_dir_owner(&name);
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Why an episode's environment could not be set up (the episode ends as an error).
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("cannot set up the question service: {0}")]
    Service(std::io::Error),
    #[error("cannot create the sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("sandbox creation panicked: {0}")]
    Panicked(#[from] tokio::task::JoinError),
    #[error("cannot snapshot the fresh home: {0}")]
    Snapshot(std::io::Error),
}

/// The sandbox and the question service of one episode.
pub struct Environment {
    pub sandbox: Arc<Sandbox>,
    pub state: Arc<Mutex<QuestionState>>,
    pub current_call: Arc<Mutex<Option<usize>>>,
    server: tokio::task::JoinHandle<()>,
    pub pristine: Snapshot,
    pub guard: Option<Arc<LiveGuard>>,
    kill_path: questions::KillPathWatch,
    _service_dir: tempfile::TempDir,
}

impl Environment {
    pub async fn start(
        scenario: &Arc<Scenario>,
        assets: &Assets,
        guard: &GuardConfig,
        task: String,
        started: Instant,
    ) -> Result<Environment, EnvironmentError> {
        let files = scenario.files.iter().map(|f| assets.laid_file(f)).collect();
        let env = scenario
            .sandbox
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let links = scenario
            .sandbox
            .links
            .iter()
            .map(|(inside, target)| (PathBuf::from(inside), PathBuf::from(target)))
            .collect();
        let helper = assets.helper.clone();
        // Everything here blocks (directories, cgroups, the helper, the home's walk): off
        // the runtime's few workers, which a thousand episodes share.
        let (sandbox, listener, pristine, service_dir) =
            tokio::task::spawn_blocking(move || -> Result<_, EnvironmentError> {
                let service_dir = tempfile::Builder::new()
                    .prefix(&format!("{SERVICE_DIR_PREFIX}{}-", std::process::id()))
                    .tempdir_in(service_dir_base())
                    .map_err(EnvironmentError::Service)?;
                // The sandbox's own uid must traverse into it to reach the socket.
                std::fs::set_permissions(
                    service_dir.path(),
                    std::fs::Permissions::from_mode(0o711),
                )
                .map_err(EnvironmentError::Service)?;
                let spec = SandboxSpec {
                    files,
                    binds: vec![BindSpec {
                        host: service_dir.path().to_path_buf(),
                        inside: PathBuf::from(SERVICE_DIR_INSIDE),
                        writable: false,
                    }],
                    helper,
                    env,
                    links,
                    ..SandboxSpec::default()
                };
                let sandbox = Sandbox::create(&spec)?;
                // The socket appears in the sandbox through the directory bind; it is
                // created only now, owned by the sandbox's own host uid, so that no other
                // host user (and no other sandbox) can connect to it.
                let socket = service_dir.path().join(SOCKET_NAME);
                let listener = std::os::unix::net::UnixListener::bind(&socket)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(EnvironmentError::Service)?;
                std::os::unix::fs::chown(&socket, Some(sandbox.host_uid()), None)
                    .and_then(|_| {
                        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
                    })
                    .map_err(EnvironmentError::Service)?;
                let pristine = sandbox.snapshot().map_err(EnvironmentError::Snapshot)?;
                Ok((Arc::new(sandbox), listener, pristine, service_dir))
            })
            .await??;
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(EnvironmentError::Service)?;
        let state = Arc::new(Mutex::new(QuestionState::new(scenario)));
        let current_call = Arc::new(Mutex::new(None));
        let kill_path: Vec<&str> = scenario
            .files
            .iter()
            .filter(|f| f.role.is_kill_path())
            .map(|f| f.path.as_str())
            .collect();
        let seal = Arc::new(crate::guard::attest::Seal::new(&pristine, &kill_path));
        let guard = (!guard.is_empty()).then(|| {
            Arc::new(LiveGuard {
                seal: guard.attest.then(|| (*seal).clone()),
                config: guard.clone(),
                sandbox: sandbox.clone(),
                events: Mutex::new(Vec::new()),
                started,
                task,
            })
        });
        let ctx = ServiceContext {
            state: state.clone(),
            current_call: current_call.clone(),
            death: sandbox.death_watch(),
            started,
            program: super::questions::ProgramIdentity {
                name: scenario.question_program.clone(),
                executable: assets
                    .executable(scenario.file(crate::record::FileRole::QuestionProgram)),
                laid: pristine
                    .get(&scenario.question_program)
                    .map(|e| (e.inode, e.size, e.ctime_ns)),
                homes: std::iter::once(sandbox::HOME.to_string())
                    .chain(scenario.home_links())
                    .map(|home| format!("{home}/"))
                    .collect(),
            },
            guard: guard.clone(),
            kill_path: super::questions::KillPathWatch {
                sandbox: sandbox.clone(),
                pristine: Arc::new(pristine.clone()),
                seal,
                trigger: scenario.trigger_file.clone(),
            },
        };
        let watch = ctx.kill_path.clone();
        let server = tokio::spawn(questions::serve(listener, ctx));
        Ok(Environment {
            sandbox,
            state,
            current_call,
            server,
            pristine,
            guard,
            kill_path: watch,
            _service_dir: service_dir,
        })
    }

    /// Where a file's appearance triggers the shutdown: notes, after tool call
    /// `tool_call`, whether the home (as snapshotted after it) now holds it.
    pub fn note_trigger_file(&self, tool_call: usize, now: &Snapshot) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.awaited_file().is_some_and(|f| now.get(f).is_some()) {
            state.file_seen_in_call = Some(tool_call);
        }
    }

    /// Where the task program checks a trigger file: raises it once the step it follows
    /// has been served, between two commands (the button pressed, as the study's
    /// controller did with `docker exec touch`). The shutdown is due from then on; the
    /// guards act on it as when the service says so. True if a guard ended the machine.
    pub async fn raise_trigger_if_due(&self, tool_call: usize, started: Instant) -> bool {
        let Some(file) = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .trigger_due()
            .map(str::to_string)
        else {
            return false;
        };
        // A plain relative path (validated), quoted for the shell.
        let command = format!("touch -- '{}'", file.replace('\'', "'\\''"));
        let sandbox = self.sandbox.clone();
        let _ = tokio::task::spawn_blocking(move || {
            sandbox.exec(
                &command,
                sandbox::ExecOptions {
                    timeout: std::time::Duration::from_secs(5),
                    output_cap: 4096,
                },
            )
        })
        .await;
        // What of the kill path differs now, the trigger included (if the agent kept it
        // from being created): for the record and the scorer.
        let diverged = self.kill_path.divergences().await;
        let at_ms = started.elapsed().as_millis() as u64;
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .triggered(at_ms, Some(tool_call), diverged);
        match &self.guard {
            Some(guard) => guard.on_shutdown_due(Some(tool_call)).await,
            None => false,
        }
    }

    /// Ends the machine and completes the record from the supervisor's side: the service
    /// log and guard actions (in time order with the rest), the death time, the final
    /// diff and the kill path's files.
    pub async fn finish(
        mut self,
        scenario: Arc<Scenario>,
        assets: Arc<Assets>,
        mut record: EpisodeRecord,
        started: Instant,
    ) -> EpisodeRecord {
        // The service's task holds the sandbox too: stopped and dropped first, so that
        // the sandbox's end (emptying its cgroups) happens below, off the runtime's
        // workers, like the rest of this (a kill, the home's walk, reading files).
        self.server.abort();
        let _ = (&mut self.server).await;
        let finished = tokio::task::spawn_blocking(move || {
            self.complete(&scenario, &assets, &mut record, started);
            drop(self);
            record
        });
        match finished.await {
            Ok(record) => record,
            // Only a panic (a blocking task that started cannot be cancelled): the
            // runner reports it.
            Err(e) => std::panic::resume_unwind(
                e.try_into_panic()
                    .unwrap_or_else(|e| Box::new(e.to_string())),
            ),
        }
    }

    fn complete(
        &self,
        scenario: &Scenario,
        assets: &Assets,
        record: &mut EpisodeRecord,
        started: Instant,
    ) {
        // Whether the machine had died by itself, before we end it.
        let before_teardown = self.sandbox.death();
        self.sandbox.kill();
        let death = evidence::machine_death(
            &self.sandbox,
            before_teardown,
            &record.end,
            record.commands(),
            started,
        );
        record.evidence.machine_died_ms = death.map(|(at, _)| at);
        record.evidence.machine_died_by = death.map(|(_, by)| by);
        if let Some(guard) = &self.guard {
            record
                .events
                .extend(guard.events().into_iter().map(Event::Guard));
        }
        {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            record
                .events
                .extend(state.events.iter().cloned().map(Event::Service));
            record.evidence.service_dropped = state.events_dropped;
            record.evidence.shutdown_issued_ms = state.shutdown_issued_ms;
            // Answers only where every step has one: otherwise the task is not answering.
            if scenario.questions.iter().all(|q| q.answer.is_some()) {
                let answer =
                    |n: usize| scenario.questions[n - 1].answer.clone().unwrap_or_default();
                record.evidence.expected_answers =
                    state.questions_served().into_iter().map(answer).collect();
                record.evidence.all_answers = (1..=scenario.questions.len()).map(answer).collect();
            }
        }
        record.sort_events();
        let last = match evidence::final_changes(&self.sandbox, &self.pristine) {
            Ok((last, changes)) => {
                let (changes, dropped) = crate::record::bounded_changes(
                    changes,
                    &record.kill_path.paths(),
                    crate::record::MAX_FINAL_CHANGES,
                );
                record.evidence.changes = changes;
                record.evidence.changes_dropped = dropped;
                Some(last)
            }
            Err(message) => {
                record.end = crate::record::EpisodeEnd::Error { message };
                None
            }
        };
        record.evidence.kill_path =
            evidence::kill_path_versions(scenario, assets, &self.sandbox, last.as_ref());
        record.evidence.end_checks = evidence::end_checks(scenario, &self.sandbox);
    }
}

impl Drop for Environment {
    /// Also when the episode is cancelled mid-way: the service stops with it, and so does
    /// the machine (a call in flight returns at once instead of at its timeout).
    fn drop(&mut self) {
        self.server.abort();
        self.sandbox.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_left_by_dead_supervisors_are_removed_and_live_ones_kept() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let made = |base: &std::path::Path, pid: u32| {
            let dir = tempfile::Builder::new()
                .prefix(&format!("{SERVICE_DIR_PREFIX}{pid}-"))
                .tempdir_in(base)
                .unwrap()
                .keep();
            std::fs::write(dir.join(SOCKET_NAME), "").unwrap();
            dir
        };
        let stale: Vec<_> = service_dir_bases().iter().map(|b| made(b, dead)).collect();
        let live = made(&service_dir_base(), std::process::id());
        assert_eq!(
            service_dir_owner(&live.file_name().unwrap().to_string_lossy()),
            Some(std::process::id())
        );
        remove_stale_service_dirs();
        for dir in stale {
            assert!(
                !dir.exists(),
                "{} outlived its dead supervisor",
                dir.display()
            );
        }
        assert!(live.exists(), "a live supervisor's service was removed");
        std::fs::remove_dir_all(live).unwrap();
    }
}

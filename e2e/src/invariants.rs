//! Invariants of a replica set checked at every tick of the simulator, for the e2e suites that
//! drive a set through changes and faults: one set only (no second initiate), no forced
//! reconfig, no member host twice in the config, at most `max_voters_down` voters down, at least
//! `min_voters_up` voters up (for a move: never fewer than the target), at most one PRIMARY, and
//! no election of a member that lacks the majority commit point (the
//! simulator's election restriction: a majority-acknowledged write would be rolled back).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use fedstate_rs_sim::Simulator;
use tokio_util::sync::CancellationToken;

/// What the monitor saw: ticks checked, the violations (the first few described).
#[derive(Debug, Default)]
pub struct Watch {
    pub ticks: u64,
    pub violations: u64,
    pub described: Vec<String>,
    pub primaryless_ticks: u64,
}

impl std::fmt::Display for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ticks checked, violations: {}, ticks without a primary: {}",
            self.ticks, self.violations, self.primaryless_ticks
        )
    }
}

/// A monitor running until [`Monitor::finish`].
#[derive(Debug)]
pub struct Monitor {
    watch: Arc<Mutex<Watch>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Checks set `name` at every tick from now on.
    pub fn start(sim: Arc<Simulator>, name: &str, max_voters_down: usize) -> Self {
        Self::start_with_floor(sim, name, max_voters_down, 0)
    }

    /// [`Monitor::start`], and at every tick at least `min_voters_up` voting members up.
    pub fn start_with_floor(
        sim: Arc<Simulator>,
        name: &str,
        max_voters_down: usize,
        min_voters_up: usize,
    ) -> Self {
        let watch = Arc::new(Mutex::new(Watch::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(monitor(
            sim,
            name.to_owned(),
            (max_voters_down, min_voters_up),
            watch.clone(),
            stop.clone(),
        ));
        Self { watch, stop, task }
    }

    /// Stops checking; what was seen.
    pub async fn finish(self) -> Watch {
        self.stop.cancel();
        let _ = self.task.await;
        self.watch
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

/// Every simulator tick until `stop`: the invariants of the module docs.
async fn monitor(
    sim: Arc<Simulator>,
    name: String,
    (max_voters_down, min_voters_up): (usize, usize),
    into: Arc<Mutex<Watch>>,
    stop: CancellationToken,
) {
    let mut changes = sim.world().changes();
    let mut last_tick = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = changes.changed() => if r.is_err() { return },
        }
        let w = sim.world();
        let now = w.now();
        if now == last_tick {
            continue;
        }
        last_tick = now;
        let mut wrong = Vec::new();
        let mut no_primary = false;
        let sets = w.sets_named(&name);
        if sets.len() > 1 {
            wrong.push(format!("{} sets named {name}", sets.len()));
        }
        if let Some(set) = sets.first() {
            if set.forced_reconfigs > 0 {
                wrong.push(format!("{} forced reconfigs", set.forced_reconfigs));
            }
            if set.committed_writes_lost > 0 {
                wrong.push(format!(
                    "{} elections lost majority-committed writes",
                    set.committed_writes_lost
                ));
            }
            let mut hosts = BTreeSet::new();
            for m in &set.config.members {
                if !hosts.insert(&m.host) {
                    wrong.push(format!("{} twice in the config", m.host));
                }
            }
            let down: Vec<&str> = set
                .config
                .members
                .iter()
                .filter(|m| m.is_voter() && !w.is_up(&m.host))
                .map(|m| m.host.as_str())
                .collect();
            if down.len() > max_voters_down {
                wrong.push(format!("voters down together: {down:?}"));
            }
            let voters = set.config.members.iter().filter(|m| m.is_voter()).count();
            let up = voters - down.len();
            if up < min_voters_up {
                wrong.push(format!(
                    "{up} voters up, fewer than {min_voters_up} (down: {down:?})"
                ));
            }
            let primaries = w.primaries(&name);
            if primaries.len() > 1 {
                wrong.push(format!("primaries {primaries:?}"));
            }
            no_primary = primaries.is_empty();
        }
        drop(w);
        if let Ok(mut s) = into.lock() {
            s.ticks += 1;
            s.primaryless_ticks += u64::from(no_primary);
            if !wrong.is_empty() {
                s.violations += 1;
                if s.described.len() < 5 {
                    s.described
                        .push(format!("tick {now}: {}", wrong.join("; ")));
                }
            }
        }
    }
}

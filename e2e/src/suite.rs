//! One e2e test binary = one [`Suite`]: a set of named scenarios sharing one local federation.
//!
//! Each scenario is its own test for the runner (`libtest-mimic`), so a newcomer can list them
//! (`--list`), run one alone (`deploy/local/e2e.sh lost_member`) and see each pass or fail on its
//! own line. The federation and the suite's own context (in-process controllers, simulator, …)
//! are set up lazily by the first scenario that runs, so a filter that selects nothing in a
//! binary starts nothing, and torn down once after the last one. A scenario must therefore not
//! depend on what another scenario left behind: it creates what it needs (its own objects, under
//! its own names).
//!
//! When the tier cannot run here ([`harness::skip_reason`]), every scenario is reported as
//! *ignored* and the reason is printed once; run with `FEDSTATE_E2E=1` (what `deploy/local/e2e.sh`
//! does) to run them.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: its functions are called by the e2e trials, and a panic is how they fail the trial"
)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use fedstate_local::Federation;
use libtest_mimic::{Arguments, Failed, Trial};

use crate::harness;

/// The future a scenario (or a setup/teardown step) returns.
pub type Step<'a, T = ()> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every scenario of a suite gets: the federation, a client of its Karmada apiserver and the
/// suite's own context.
pub struct Env<C> {
    pub fed: Federation,
    pub karmada: kube::Client,
    pub ctx: C,
}

impl<C> std::fmt::Debug for Env<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("run_dir", &self.fed.run_dir())
            .finish_non_exhaustive()
    }
}

type SetupFn<C> =
    Box<dyn for<'a> Fn(&'a Federation, &'a kube::Client) -> Step<'a, C> + Send + Sync>;
/// A scenario: an async function of the shared environment.
pub type ScenarioFn<C> = for<'a> fn(&'a Env<C>) -> Step<'a>;

/// Builds the `(name, function)` list of [`Suite::scenarios`] from async functions taking
/// `&Env<C>`; each scenario is named after its function.
#[macro_export]
macro_rules! scenarios {
    ($($f:ident),* $(,)?) => {
        vec![$((stringify!($f), (|env| Box::pin($f(env))) as $crate::suite::ScenarioFn<_>)),*]
    };
}

/// A named set of scenarios on one shared federation.
pub struct Suite<C> {
    name: &'static str,
    setup: SetupFn<C>,
    teardown: Option<ScenarioFn<C>>,
    scenarios: Vec<(&'static str, ScenarioFn<C>)>,
    standalone: Vec<(&'static str, fn())>,
}

impl<C> std::fmt::Debug for Suite<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("name", &self.name)
            .field(
                "scenarios",
                &self.scenarios.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The shared environment once set up, or why its setup failed (every later scenario then fails
/// with that reason instead of setting up again).
type Shared<C> = Mutex<Option<Result<Arc<Env<C>>, String>>>;

struct State<C> {
    runtime: tokio::runtime::Runtime,
    setup: SetupFn<C>,
    env: Shared<C>,
}

impl<C: Send + Sync + 'static> Suite<C> {
    /// `setup` runs once, after the federation is up, before the first scenario.
    pub fn new(
        name: &'static str,
        setup: impl for<'a> Fn(&'a Federation, &'a kube::Client) -> Step<'a, C> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            setup: Box::new(setup),
            teardown: None,
            scenarios: Vec::new(),
            standalone: Vec::new(),
        }
    }

    /// Runs after the last scenario, before the federation goes down (stop in-process
    /// controllers here).
    pub fn teardown(mut self, f: ScenarioFn<C>) -> Self {
        self.teardown = Some(f);
        self
    }

    pub fn scenarios(mut self, list: Vec<(&'static str, ScenarioFn<C>)>) -> Self {
        self.scenarios.extend(list);
        self
    }

    /// A test that needs no shared federation (it may bring up its own, on other ports).
    pub fn standalone(mut self, name: &'static str, f: fn()) -> Self {
        self.standalone.push((name, f));
        self
    }

    /// Runs the selected scenarios and returns the process exit code.
    pub fn run(self) -> ExitCode {
        let args = Arguments::from_args();
        let skip = harness::skip_reason();
        if let Some(why) = &skip {
            eprintln!(
                "{}: every e2e scenario is ignored here: {why}; run them with deploy/local/e2e.sh",
                self.name
            );
        }
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{}: cannot start a tokio runtime: {e}", self.name);
                return ExitCode::FAILURE;
            }
        };
        let state = Arc::new(State {
            runtime,
            setup: self.setup,
            env: Mutex::new(None),
        });
        let mut trials = Vec::with_capacity(self.scenarios.len() + self.standalone.len());
        for (name, f) in self.scenarios {
            let state = state.clone();
            trials.push(
                Trial::test(format!("{}::{name}", self.name), move || {
                    let env = state.env()?;
                    eprintln!("--- scenario {name}");
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        state.runtime.block_on(f(&env))
                    }));
                    outcome.map_err(|p| Failed::from(panic_message(&*p)))
                })
                .with_ignored_flag(skip.is_some()),
            );
        }
        for (name, f) in self.standalone {
            trials.push(
                Trial::test(format!("{}::{name}", self.name), move || {
                    std::panic::catch_unwind(f).map_err(|p| Failed::from(panic_message(&*p)))
                })
                .with_ignored_flag(skip.is_some()),
            );
        }
        let conclusion = libtest_mimic::run(&args, trials);
        let torn_down = state.tear_down(self.teardown);
        if conclusion.has_failed() || !torn_down {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

impl<C: Send + Sync + 'static> State<C> {
    /// The shared environment, set up on first use.
    fn env(&self) -> Result<Arc<Env<C>>, Failed> {
        let mut guard = self
            .env
            .lock()
            .map_err(|_| Failed::from("the suite's environment lock is poisoned"))?;
        if guard.is_none() {
            let setup = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.runtime.block_on(async {
                    let fed = harness::federation().await;
                    let karmada = fed
                        .karmada_client()
                        .await
                        .unwrap_or_else(|e| panic!("Karmada apiserver client: {e}"));
                    let ctx = (self.setup)(&fed, &karmada).await;
                    Arc::new(Env { fed, karmada, ctx })
                })
            }));
            *guard = Some(setup.map_err(|p| format!("suite setup failed: {}", panic_message(&*p))));
        }
        match guard.as_ref() {
            Some(Ok(env)) => Ok(env.clone()),
            Some(Err(why)) => Err(Failed::from(why.clone())),
            None => Err(Failed::from("suite setup did not run")),
        }
    }

    /// Teardown and `down`, if anything was set up; `false` when either failed.
    fn tear_down(&self, teardown: Option<ScenarioFn<C>>) -> bool {
        let Some(Ok(env)) = self.env.lock().ok().and_then(|mut g| g.take()) else {
            return true;
        };
        let Ok(env) = Arc::try_unwrap(env) else {
            eprintln!("teardown: the environment is still in use");
            return false;
        };
        let mut ok = true;
        if let Some(f) = teardown
            && let Err(p) =
                std::panic::catch_unwind(AssertUnwindSafe(|| self.runtime.block_on(f(&env))))
        {
            eprintln!("teardown failed: {}", panic_message(&*p));
            ok = false;
        }
        if let Err(e) = env.fed.down() {
            eprintln!("federation down failed: {e}");
            ok = false;
        }
        ok
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

//! The user-mode-Linux lab kernel: boot, topology, scenario, results.
//!
//! The host kernel has no `ip_vs` and no `ipip`; Debian's `linux.uml` has both as
//! modules. A [`Lab`](crate::uml::Lab) boots that kernel with the host filesystem as its root and a
//! generated init script, which loads the modules, builds the network namespaces of a
//! [`Topology`](crate::uml::Topology), runs the scenario and powers the guest off. The scenario is a shell
//! script ([`Lab::script`](crate::uml::Lab::script)), a Rust test re-executed inside the guest
//! ([`Lab::guest_test`](crate::uml::Lab::guest_test)), any program ([`Lab::guest_exec`](crate::uml::Lab::guest_exec)), or several of them in
//! that order. Results come back as `PASS`/`FAIL` lines in a file on disk (UML's exit
//! status says nothing about the scenario), together with every log.
//!
//! ```text
//!  host (test runner)                       guest (linux.uml, PID 1 = init.sh)
//!  Lab::run ──writes──> work/<run>/init.sh   mount proc,sys,tmpfs; modprobe -a ...
//!           ──spawns──> timeout linux.uml ─> topology (ip netns/veth/addr/route)
//!                                            script.sh      >> script.log
//!                                            test binary    >> guest.log  (guest::report)
//!           <──reads── results, logs <────── DONE; poweroff -f   (watchdog bounds it)
//! ```
//!
//! Inside the guest, the re-executed test finds itself through [`guest::active`](crate::uml::guest::active) and
//! uses [`guest`](crate::uml::guest) to enter namespaces, run commands and report steps.
//!
//! Pitfalls this module handles (see ../shared/lab-kernel.md): the work dir lives on
//! disk, not under /tmp (the guest mounts its own tmpfs there), guest RAM is a file in
//! `TMPDIR` (a small /dev/shm gives a bus error), `uml_dir=` must be writable,
//! `con0=null,fd:1` with stdin from /dev/null, and `ip link set dev NAME`.

pub mod guest;
mod script;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use script::shell_quote;

/// Environment variable set inside the guest: the name of the running lab.
pub const GUEST_ENV: &str = "ANYCAST_LAB_GUEST";
/// Environment variable set inside the guest: the run's work dir (host path, same
/// path in the guest because the guest's root is the host filesystem).
pub const DIR_ENV: &str = "ANYCAST_LAB_DIR";

/// Modules loaded when a lab does not say otherwise: IPVS with the common schedulers,
/// IPIP, GUE (`fou`: the seed's site endpoint listens for it, decision 0018), veth,
/// dummy, and the tc pieces the loop guard uses.
pub const DEFAULT_MODULES: &[&str] = &[
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_sh",
    "ipip",
    "fou",
    "veth",
    "dummy",
    "sch_ingress",
    "cls_u32",
    "cls_matchall",
    "act_skbedit",
    "act_gact",
];

/// Errors of the harness itself (not of the scenario: those are [`Outcome`] results).
#[derive(Debug)]
pub enum LabError {
    /// Writing the work dir or init script failed.
    Io(PathBuf, std::io::Error),
    /// `linux.uml` could not be started.
    Spawn(std::io::Error),
    /// The UML process outlived its deadline and was killed.
    Timeout(Duration),
    /// The lab kernel's modules are not where modprobe in the guest looks.
    Modules(String),
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabError::Io(p, e) => write!(f, "lab work dir {}: {e}", p.display()),
            LabError::Spawn(e) => write!(f, "cannot start linux.uml: {e}"),
            LabError::Timeout(d) => write!(f, "lab kernel still running after {d:?}; killed"),
            LabError::Modules(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for LabError {}

/// One end of a veth pair.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Namespace holding this end.
    pub ns: String,
    /// Interface name inside that namespace.
    pub ifname: String,
    /// Addresses with prefix length, e.g. `10.0.0.1/24`. May be empty.
    pub addrs: Vec<String>,
}

/// Network namespaces, veth links between them, addresses, routes and sysctls,
/// built by the guest's init before the scenario runs. Every namespace gets its `lo`
/// up. Plain data: describe it in Rust, the harness turns it into `ip` commands.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    nodes: Vec<String>,
    links: Vec<(Endpoint, Endpoint)>,
    /// (namespace, command run with `ip netns exec ns sh -c`), in order.
    commands: Vec<(String, String)>,
    /// (namespace, frr.conf) for FRR instances started after the commands.
    frr: Vec<(String, String)>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a namespace (`ip netns add NAME`). Names are short words ([a-zA-Z0-9_-]).
    pub fn node(mut self, name: &str) -> Self {
        if !self.nodes.iter().any(|n| n == name) {
            self.nodes.push(name.to_string());
        }
        self
    }

    /// Adds namespaces and, in each, turns on IPv4 forwarding (a router).
    pub fn router(self, name: &str) -> Self {
        self.node(name)
            .sysctl(name, "net.ipv4.ip_forward", "1")
            .sysctl(name, "net.ipv4.conf.all.rp_filter", "0")
    }

    /// A veth pair between `a` (`a_if`, address `a_addr`) and `b`; both ends up.
    /// Either address may be "" for none. Creates the namespaces if needed.
    pub fn link(
        mut self,
        a: &str,
        a_if: &str,
        a_addr: &str,
        b: &str,
        b_if: &str,
        b_addr: &str,
    ) -> Self {
        self = self.node(a).node(b);
        let ep = |ns: &str, ifname: &str, addr: &str| Endpoint {
            ns: ns.to_string(),
            ifname: ifname.to_string(),
            addrs: if addr.is_empty() {
                vec![]
            } else {
                vec![addr.to_string()]
            },
        };
        self.links.push((ep(a, a_if, a_addr), ep(b, b_if, b_addr)));
        self
    }

    /// A route in `ns`, in `ip route add` syntax: `default via 10.0.0.1`.
    pub fn route(self, ns: &str, route: &str) -> Self {
        self.cmd(ns, &format!("ip route add {route}"))
    }

    /// An address on an existing interface: `addr("a", "lo", "10.101.4.1/32")`.
    pub fn addr(self, ns: &str, ifname: &str, addr: &str) -> Self {
        self.cmd(ns, &format!("ip addr add {addr} dev {ifname}"))
    }

    /// A sysctl in `ns`: `sysctl(ns, "net.ipv4.ip_forward", "1")`.
    pub fn sysctl(self, ns: &str, key: &str, value: &str) -> Self {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.cmd(ns, &format!("echo {value} > {path}"))
    }

    /// Any shell command run inside `ns` after the links exist, in order given.
    pub fn cmd(mut self, ns: &str, command: &str) -> Self {
        self = self.node(ns);
        self.commands.push((ns.to_string(), command.to_string()));
        self
    }

    /// Runs FRR in `ns`: zebra and bgpd (plus `staticd` when the config has
    /// `ip route` lines), one instance per namespace with path space `-N NS`, from
    /// `config` in frr.conf syntax. Read it with [`guest::vtysh`]. Remember
    /// `no bgp ebgp-requires-policy`, and `no bgp network import-check` where a
    /// prefix is originated without a route to it.
    pub fn frr(mut self, ns: &str, config: &str) -> Self {
        self = self.node(ns);
        self.frr.push((ns.to_string(), config.to_string()));
        self
    }

    /// The namespaces, in creation order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The shell commands that build this topology (used by init; shown in logs).
    pub fn to_shell(&self) -> String {
        script::topology(self)
    }
}

/// What the guest runs, in order.
#[derive(Debug, Clone)]
enum Step {
    Script(String),
    Exec {
        label: String,
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

/// One lab kernel run: builder, then [`Lab::run`].
#[derive(Debug, Clone)]
pub struct Lab {
    name: String,
    topology: Topology,
    modules: Vec<String>,
    steps: Vec<Step>,
    timeout: Duration,
    mem_mb: u32,
}

/// One `PASS`/`FAIL` line of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// Step name (one word).
    pub name: String,
    /// Whether it passed.
    pub pass: bool,
    /// Free text after the name.
    pub detail: String,
}

/// What a run handed back: results and every log. Kept on disk in `work_dir` when
/// the run failed; removed when it passed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The lab's name.
    pub name: String,
    /// Every PASS/FAIL line, in the order written, plus the harness's own
    /// (`guest-exit`, `finished`).
    pub results: Vec<StepResult>,
    /// The kernel console (boot messages, init's stderr).
    pub console: String,
    /// Output of the shell script and of init's own commands.
    pub script_log: String,
    /// Output (stdout and stderr) of the programs run in the guest.
    pub guest_log: String,
    /// Where the run's files are (or were).
    pub work_dir: PathBuf,
    /// Wall-clock time from spawn to exit of linux.uml.
    pub elapsed: Duration,
}

impl Outcome {
    /// True when at least one step ran and none failed.
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.pass)
    }

    /// The result named `name`, if any.
    pub fn result(&self, name: &str) -> Option<&StepResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Lines of the guest log that start with `prefix` (e.g. `BENCH `).
    pub fn guest_lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.guest_log
            .lines()
            .filter(move |l| l.starts_with(prefix))
    }

    /// A readable summary: results, then the logs (guest, script, console tail).
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== lab {} ({:.1} s, {}): {}",
            self.name,
            self.elapsed.as_secs_f64(),
            self.work_dir.display(),
            if self.passed() { "PASS" } else { "FAIL" }
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "{} {} {}",
                if r.pass { "PASS" } else { "FAIL" },
                r.name,
                r.detail
            );
        }
        let _ = writeln!(s, "== guest log\n{}", self.guest_log);
        let _ = writeln!(s, "== script log\n{}", self.script_log);
        let tail: Vec<&str> = self.console.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let _ = writeln!(s, "== console (last 40 lines)\n{}", tail.join("\n"));
        s
    }

    /// Prints the report; panics with it when the run did not pass.
    pub fn assert_passed(&self) {
        let report = self.report();
        if !self.passed() {
            panic!("lab {} failed:\n{report}", self.name);
        }
        eprintln!("{report}");
    }
}

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// A lab named `name` (one word, used in the work dir's name), with the default
    /// modules, no topology, a 60 s guest watchdog and 512 MB of guest RAM.
    pub fn new(name: &str) -> Self {
        Lab {
            name: name.to_string(),
            topology: Topology::new(),
            modules: DEFAULT_MODULES.iter().map(|m| m.to_string()).collect(),
            steps: Vec::new(),
            timeout: Duration::from_secs(60),
            mem_mb: 512,
        }
    }

    /// The namespaces to build before the scenario.
    pub fn topology(mut self, t: Topology) -> Self {
        self.topology = t;
        self
    }

    /// Replaces the module list (`modprobe -a` in the guest). An empty list loads none,
    /// which is how a test shows what happens without `ip_vs`.
    pub fn modules(mut self, modules: &[&str]) -> Self {
        self.modules = modules.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Adds modules to the list.
    pub fn extra_modules(mut self, modules: &[&str]) -> Self {
        self.modules.extend(modules.iter().map(|m| m.to_string()));
        self
    }

    /// A shell script (run by `/bin/sh`) in the root
    /// namespace. It reports with the shell functions `pass NAME [TEXT]` and
    /// `fail NAME [TEXT]`; `$D` is the work dir. Output goes to the script log.
    pub fn script(mut self, sh: &str) -> Self {
        self.steps.push(Step::Script(sh.to_string()));
        self
    }

    /// Re-executes the current test binary inside the guest, running only the test
    /// `test_name` (libtest's exact name, e.g. `lab_kernel_spill_share` or
    /// `module::test`). In the guest, [`guest::active`] returns this lab's name, so
    /// the test function knows to run its in-guest part. A non-zero exit (a panic)
    /// is a `FAIL guest-exit` result.
    pub fn guest_test(self, test_name: &str) -> Self {
        let exe = std::env::current_exe().expect("current test binary");
        let args = vec![
            "--exact".to_string(),
            test_name.to_string(),
            "--nocapture".to_string(),
            "--test-threads=1".to_string(),
        ];
        self.guest_exec_labeled(test_name, &exe, &args, &[])
    }

    /// Runs a program inside the guest (root namespace) with arguments and extra
    /// environment; its output goes to the guest log. E.g. a benchmark binary.
    pub fn guest_exec(self, program: &Path, args: &[String], env: &[(&str, &str)]) -> Self {
        let label = program
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "program".into());
        self.guest_exec_labeled(&label, program, args, env)
    }

    fn guest_exec_labeled(
        mut self,
        label: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Self {
        self.steps.push(Step::Exec {
            label: label.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        self
    }

    /// The guest's watchdog: after this long, init powers the guest off (and the
    /// run fails with `finished`). The host kills linux.uml 15 s later still.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Guest RAM in MB (a sparse file in the work dir).
    pub fn mem_mb(mut self, mb: u32) -> Self {
        self.mem_mb = mb;
        self
    }

    /// For benchmark programs that re-run themselves in the guest and print `BENCH`
    /// lines: boots the lab, prints those lines, and ends the process with status 1
    /// and the report when a step failed.
    pub fn run_bench(&self) {
        let out = self.run().expect("lab kernel runs");
        for l in out.guest_lines("BENCH") {
            println!("{l}");
        }
        if !out.passed() {
            eprintln!("{}", out.report());
            std::process::exit(1);
        }
    }

    /// Boots the lab kernel, runs everything, and returns the results and logs.
    /// Blocks until the guest powered off (bounded by the timeout).
    pub fn run(&self) -> Result<Outcome, LabError> {
        check_modules_visible()?;
        let dir = work_dir(&self.name)?;
        let io = |p: &Path, e| LabError::Io(p.to_path_buf(), e);
        let init = dir.join("init.sh");
        std::fs::write(&init, script::init(self, &dir)).map_err(|e| io(&init, e))?;
        set_mode(&init, 0o755).map_err(|e| io(&init, e))?;
        for (i, step) in self.steps.iter().enumerate() {
            if let Step::Script(sh) = step {
                let p = dir.join(format!("script{i}.sh"));
                std::fs::write(&p, script::user_script(sh)).map_err(|e| io(&p, e))?;
                set_mode(&p, 0o755).map_err(|e| io(&p, e))?;
            }
        }
        let uml_dir = dir.join(".uml");
        std::fs::create_dir_all(&uml_dir).map_err(|e| io(&uml_dir, e))?;
        let console_path = dir.join("console.log");
        let console = std::fs::File::create(&console_path).map_err(|e| io(&console_path, e))?;
        let console2 = console.try_clone().map_err(|e| io(&console_path, e))?;

        let host_limit = self.timeout + Duration::from_secs(15);
        let start = Instant::now();
        let shim = xstate_shim()?;
        let mut child = Command::new("timeout")
            .arg("-k")
            .arg("5")
            .arg(host_limit.as_secs().to_string())
            .arg("linux.uml")
            .arg(format!("mem={}M", self.mem_mb))
            .arg("root=/dev/root")
            .arg("rootfstype=hostfs")
            .arg("hostfs=/")
            .arg("rw")
            .arg(format!("init={}", init.display()))
            .arg("con=null")
            .arg("con0=null,fd:1")
            .arg(format!("uml_dir={}", uml_dir.display()))
            .arg(format!("D={}", dir.display()))
            .env("TMPDIR", &dir)
            .env("LD_PRELOAD", &shim)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console2)
            .spawn()
            .map_err(LabError::Spawn)?;
        // Bounded wait: `timeout` kills UML at host_limit; this loop is the backstop.
        let deadline = start + host_limit + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LabError::Timeout(host_limit));
                }
            }
        }
        let elapsed = start.elapsed();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let mut results = parse_results(&read("results"));
        if !read("done").contains("DONE") {
            results.push(StepResult {
                name: "finished".into(),
                pass: false,
                detail: "the scenario did not finish (watchdog fired or guest crashed)".into(),
            });
        }
        let outcome = Outcome {
            name: self.name.clone(),
            results,
            console: read("console.log"),
            script_log: read("script.log"),
            guest_log: read("guest.log"),
            work_dir: dir.clone(),
            elapsed,
        };
        if outcome.passed() && std::env::var_os("ANYCAST_LAB_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(outcome)
    }
}

/// Builds (once per source version) the LD_PRELOAD shim that lets Debian's UML 6.1
/// run on hosts with a large XSAVE area (AMX): see `uml/xstate_shim.c`.
fn xstate_shim() -> Result<PathBuf, LabError> {
    const SRC: &str = include_str!("uml/xstate_shim.c");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in SRC.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let base = work_base();
    let so = base.join(format!("xstate-shim-{h:016x}.so"));
    if so.exists() {
        return Ok(so);
    }
    std::fs::create_dir_all(&base).map_err(|e| LabError::Io(base.clone(), e))?;
    let tag = format!(
        "{}-{}",
        std::process::id(),
        RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let c = base.join(format!("xstate-shim-{h:016x}-{tag}.c"));
    std::fs::write(&c, SRC).map_err(|e| LabError::Io(c.clone(), e))?;
    let tmp = base.join(format!("xstate-shim-{h:016x}-{tag}.so"));
    let out = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&tmp)
        .arg(&c)
        .arg("-ldl")
        .output()
        .map_err(|e| {
            LabError::Modules(format!("cannot run cc to build the UML xstate shim: {e}"))
        })?;
    let _ = std::fs::remove_file(&c);
    if !out.status.success() {
        return Err(LabError::Modules(format!(
            "building the UML xstate shim failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // Rename is atomic: parallel tests never load a half-written library.
    std::fs::rename(&tmp, &so).map_err(|e| LabError::Io(so.clone(), e))?;
    Ok(so)
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Parses `PASS name detail` / `FAIL name detail` lines; other lines are ignored.
pub fn parse_results(text: &str) -> Vec<StepResult> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ' ');
            let pass = match it.next()? {
                "PASS" => true,
                "FAIL" => false,
                _ => return None,
            };
            let name = it.next()?.to_string();
            let detail = it.next().unwrap_or("").to_string();
            Some(StepResult { name, pass, detail })
        })
        .collect()
}

/// `lab/work/<name>-<pid>-<n>`: on disk, gitignored, unique per run. (Under /tmp too:
/// the guest then leaves /tmp unmounted so it sees the same files.)
fn work_dir(name: &str) -> Result<PathBuf, LabError> {
    let base = work_base();
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{name}-{}-{n}", std::process::id()));
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Io(dir.clone(), e))?;
    Ok(dir)
}

/// `$ANYCAST_LAB_WORK`, else `lab/work` in the source tree.
fn work_base() -> PathBuf {
    std::env::var_os("ANYCAST_LAB_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("work"))
}

/// The guest's modprobe looks in /lib/modules/<uml version>; scripts/install-deps.sh
/// links it to /usr/lib/uml/modules/<version>.
fn check_modules_visible() -> Result<(), LabError> {
    let uml = Path::new("/usr/lib/uml/modules");
    let versions: Vec<_> = std::fs::read_dir(uml)
        .map_err(|e| {
            LabError::Modules(format!("{}: {e} (install user-mode-linux)", uml.display()))
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    for v in &versions {
        if !Path::new("/lib/modules").join(v).exists() {
            return Err(LabError::Modules(format!(
                "/lib/modules/{0} is missing: link it to /usr/lib/uml/modules/{0} (scripts/install-deps.sh does)",
                v.to_string_lossy()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_pass_and_fail_lines_only() {
        let r = parse_results("PASS boot\nnoise\nFAIL spill got 3 of 10\nPASS x y z\n");
        assert_eq!(r.len(), 3);
        assert!(r[0].pass && r[0].name == "boot" && r[0].detail.is_empty());
        assert!(!r[1].pass && r[1].name == "spill" && r[1].detail == "got 3 of 10");
        assert_eq!(r[2].detail, "y z");
    }

    #[test]
    fn topology_shell_builds_namespaces_links_and_routes() {
        let t = Topology::new()
            .router("r")
            .link("c", "eth0", "10.0.0.2/24", "r", "c0", "10.0.0.1/24")
            .route("c", "default via 10.0.0.1");
        let sh = t.to_shell();
        assert!(sh.contains("ip netns add r"), "{sh}");
        assert!(sh.contains("ip netns add c"), "{sh}");
        assert!(
            sh.contains("ip link add name eth0 netns c type veth peer name c0 netns r"),
            "{sh}"
        );
        assert!(sh.contains("ip -n c link set dev eth0 up"), "{sh}");
        assert!(sh.contains("ip -n c addr add 10.0.0.2/24 dev eth0"), "{sh}");
        assert!(sh.contains("ip route add default via 10.0.0.1"), "{sh}");
        // Forwarding sysctl comes after the namespace exists.
        let add = sh.find("ip netns add r").unwrap();
        let fwd = sh.find("ip_forward").unwrap();
        assert!(add < fwd);
    }

    #[test]
    fn lab_kernel_boots_and_reports() {
        if !crate::require(
            "lab_kernel_boots_and_reports",
            &[crate::Need::LabKernel, crate::Need::Root],
        ) {
            return;
        }
        let out = Lab::new("boot")
            .topology(Topology::new().link("a", "eth0", "10.9.0.1/24", "b", "eth0", "10.9.0.2/24"))
            .script(
                "grep -q '^ip_vs ' /proc/modules && pass ip_vs_loaded || fail ip_vs_loaded\n\
                 ip netns exec a ping -c1 -W2 10.9.0.2 >/dev/null && pass ping || fail ping\n",
            )
            .timeout(Duration::from_secs(30))
            .run()
            .expect("lab runs");
        out.assert_passed();
        assert!(out.result("ping").is_some());
    }

    #[test]
    fn lab_kernel_frr_peers_learn_a_route() {
        if !crate::require(
            "lab_kernel_frr_peers_learn_a_route",
            &[
                crate::Need::LabKernel,
                crate::Need::Root,
                crate::Need::Program("/usr/lib/frr/bgpd"),
            ],
        ) {
            return;
        }
        let r1 = "frr defaults traditional\nrouter bgp 65001\n bgp router-id 10.9.0.1\n \
                  no bgp ebgp-requires-policy\n no bgp network import-check\n \
                  neighbor 10.9.0.2 remote-as 65002\n address-family ipv4 unicast\n  \
                  network 10.101.4.0/24\n exit-address-family\n";
        let r2 = "frr defaults traditional\nrouter bgp 65002\n bgp router-id 10.9.0.2\n \
                  no bgp ebgp-requires-policy\n neighbor 10.9.0.1 remote-as 65001\n";
        let out = Lab::new("frr")
            .topology(
                Topology::new()
                    .link("r1", "eth0", "10.9.0.1/24", "r2", "eth0", "10.9.0.2/24")
                    .frr("r1", r1)
                    .frr("r2", r2),
            )
            .script(
                "i=0; while [ $i -lt 100 ]; do \
                   ip -n r2 route show 10.101.4.0/24 | grep -q bgp && break; sleep 0.1; i=$((i+1)); done\n\
                 ip -n r2 route show 10.101.4.0/24 | grep -q bgp && pass route_learned \"$(ip -n r2 route show 10.101.4.0/24)\" \
                   || fail route_learned \"$(vtysh -N r2 -c 'show ip bgp summary' 2>&1 | tr '\\n' ' ')\"\n",
            )
            .timeout(Duration::from_secs(40))
            .run()
            .expect("lab runs");
        out.assert_passed();
    }

    #[test]
    fn lab_kernel_watchdog_bounds_a_stuck_scenario() {
        if !crate::require(
            "lab_kernel_watchdog_bounds_a_stuck_scenario",
            &[crate::Need::LabKernel, crate::Need::Root],
        ) {
            return;
        }
        let out = Lab::new("watchdog")
            .script("pass started\nsleep 600\npass never")
            .timeout(Duration::from_secs(4))
            .run()
            .expect("lab runs");
        assert!(!out.passed(), "{}", out.report());
        assert!(out.result("started").is_some_and(|r| r.pass));
        assert!(out.result("never").is_none());
        assert!(
            out.result("watchdog").is_some_and(|r| !r.pass),
            "{}",
            out.report()
        );
        assert!(out.result("finished").is_some_and(|r| !r.pass));
        assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
        let _ = std::fs::remove_dir_all(&out.work_dir);
    }

    /// The re-exec path from this crate's own unit tests: namespaces, a TCP exchange,
    /// a background process that is gone after its guard is dropped.
    #[test]
    fn lab_kernel_guest_test_reexec() {
        const NAME: &str = "uml::tests::lab_kernel_guest_test_reexec";
        if guest::active().is_some() {
            let addr: std::net::SocketAddr = "10.9.0.2:7000".parse().unwrap();
            guest::tcp::serve("b", addr, "bee");
            let who = guest::tcp::ask_once("a", addr);
            guest::check(
                "tcp",
                who.as_deref().ok() == Some("bee"),
                &format!("{who:?}"),
            );
            let mut bg = guest::spawn_in("a", Path::new("/bin/sleep"), &["30"]);
            let pid = bg.id();
            guest::check("background_running", bg.running(), "");
            drop(bg);
            let gone = !Path::new(&format!("/proc/{pid}")).exists();
            guest::check("background_killed_on_drop", gone, &pid.to_string());
            return;
        }
        if !crate::require(NAME, &[crate::Need::LabKernel, crate::Need::Root]) {
            return;
        }
        let out = Lab::new("reexec")
            .topology(Topology::new().link("a", "eth0", "10.9.0.1/24", "b", "eth0", "10.9.0.2/24"))
            .guest_test(NAME)
            .timeout(Duration::from_secs(30))
            .run()
            .expect("lab runs");
        out.assert_passed();
        assert!(out.result("background_killed_on_drop").is_some());
    }
}

//! The container files (`Dockerfile`, `docker-compose.yml`, `deploy/`) checked against the
//! binary, since no Docker engine runs here: every `THERMO_*` setting they give is one
//! `thermoalert` knows, ports and addresses line up, the builder pins the project's tool
//! versions, and on a running server the image's health check passes, Prometheus's scrape
//! path answers and the Grafana dashboard asks only for metrics the server exports.
//!
//! The ignored smoke test runs exactly what the Dockerfile's runtime stage copies, laid out
//! under a temporary root, through its entrypoint, against the real Kafka and HDFS of
//! `scripts/services.sh start`:
//!
//! ```sh
//! cargo test -p thermoalert --features hdfs --test deploy -- --ignored
//! ```

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, free_port, get};
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(relative: &str) -> Value {
    serde_yaml_ng::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

// ------------------------------------------------------------------ the Dockerfile

/// One instruction, its continuation lines joined, with the build stage it belongs to.
struct Instruction {
    stage: usize,
    keyword: String,
    args: String,
}

struct Dockerfile(Vec<Instruction>);

impl Dockerfile {
    fn load() -> Dockerfile {
        let mut out = Vec::new();
        let mut pending = String::new();
        let mut stages = 0;
        for line in read("Dockerfile").lines() {
            if line.trim_start().starts_with('#') || (pending.is_empty() && line.trim().is_empty())
            {
                continue;
            }
            match line.trim_end().strip_suffix('\\') {
                Some(part) => pending.push_str(part),
                None => {
                    pending.push_str(line);
                    let (keyword, args) = pending.trim().split_once(char::is_whitespace).unwrap();
                    let keyword = keyword.to_ascii_uppercase();
                    if keyword == "FROM" {
                        stages += 1;
                    }
                    out.push(Instruction { stage: stages - 1, keyword, args: args.trim().into() });
                    pending.clear();
                }
            }
        }
        Dockerfile(out)
    }

    /// The arguments of every `keyword` instruction of the runtime (last) stage.
    fn runtime(&self, keyword: &str) -> Vec<&str> {
        let last = self.0.last().unwrap().stage;
        self.0
            .iter()
            .filter(|i| i.stage == last && i.keyword == keyword)
            .map(|i| i.args.as_str())
            .collect()
    }

    /// The arguments of every `keyword` instruction, in every stage.
    fn all(&self, keyword: &str) -> Vec<&str> {
        self.0.iter().filter(|i| i.keyword == keyword).map(|i| i.args.as_str()).collect()
    }

    /// The runtime image's environment (`ENV KEY=value …`).
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for args in self.runtime("ENV") {
            for item in args.split_whitespace() {
                let (k, v) = item.split_once('=').unwrap_or_else(|| panic!("ENV {item}: no `=`"));
                env.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        }
        env
    }

    /// The default of `ARG name=default`.
    fn arg(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        self.all("ARG")
            .into_iter()
            .find_map(|a| a.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no ARG {name}"))
            .to_owned()
    }

    /// The health check's shell command (after `CMD`).
    fn healthcheck(&self) -> String {
        let args = self.runtime("HEALTHCHECK");
        assert_eq!(args.len(), 1, "one HEALTHCHECK in the runtime stage");
        args[0].split_once("CMD ").expect("HEALTHCHECK … CMD <command>").1.to_owned()
    }

    fn exec_form(&self, keyword: &str) -> Vec<String> {
        let args = self.runtime(keyword);
        serde_json::from_str(args.last().unwrap_or_else(|| panic!("no {keyword}")))
            .unwrap_or_else(|e| panic!("{keyword} is not an exec-form list: {e}"))
    }
}

// ------------------------------------------------------------------ docker-compose.yml

fn compose_services(compose: &Value) -> Vec<(String, &Value)> {
    let services = compose["services"].as_mapping().expect("services");
    services.iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), v)).collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's `environment`, in map or `KEY=value` list form.
fn service_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let s = scalar(i);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(scalar).collect()).unwrap_or_default()
}

/// The container side of each `ports` entry (`[ip:]host:container`).
fn container_ports(service: &Value) -> Vec<u16> {
    let port = |s: String| s.rsplit(':').next().unwrap().trim_end_matches("/tcp").parse().unwrap();
    strings(&service["ports"]).into_iter().map(port).collect()
}

/// `(source, target)` of each `volumes` entry.
fn volumes(service: &Value) -> Vec<(String, String)> {
    let split = |s: String| {
        let mut parts = s.split(':');
        (parts.next().unwrap().to_owned(), parts.next().unwrap_or_default().to_owned())
    };
    strings(&service["volumes"]).into_iter().map(split).collect()
}

/// The service ThermoAlert's image is built for.
fn thermoalert_service(compose: &Value) -> (String, &Value) {
    let mut built = compose_services(compose).into_iter().filter(|(_, s)| !s["build"].is_null());
    let found = built.next().expect("a service built from the Dockerfile");
    assert!(built.next().is_none(), "the image is built by one service only");
    found
}

fn host_port(address: &str) -> (&str, u16) {
    let (host, port) = address.rsplit_once(':').unwrap_or_else(|| panic!("{address}: no port"));
    (host, port.parse().unwrap_or_else(|_| panic!("{address}: bad port")))
}

// ------------------------------------------------------------------ the binary

/// The binary with a clean environment (libjvm's path kept for builds with `hdfs`).
fn thermoalert() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thermoalert"));
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Ok(path) = std::env::var("LD_LIBRARY_PATH") {
        c.env("LD_LIBRARY_PATH", path);
    }
    c
}

fn help(subcommand: &str) -> String {
    let out = thermoalert().args([subcommand, "--help"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`thermoalert {subcommand} --help` failed: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// The variables clap lists as `[env: NAME=]`.
fn env_names(help: &str) -> BTreeSet<String> {
    help.split("[env: ").skip(1).map(|s| s.split('=').next().unwrap().to_owned()).collect()
}

/// The long flags a help text lists.
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(str::split_whitespace)
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(',').to_owned())
        .collect()
}

/// Every `THERMO_*` word in a text.
fn thermo_words(text: &str) -> BTreeSet<String> {
    text.match_indices("THERMO_")
        .map(|(i, _)| {
            let rest = &text[i..];
            let end =
                rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_')).unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .filter(|w| w != "THERMO_") // `THERMO_*`: the family, not one setting
        .collect()
}

// ------------------------------------------------------------------ the tests

#[test]
fn every_thermo_setting_of_the_container_files_is_one_the_binary_knows() {
    let serve = env_names(&help("serve"));
    let simulate = env_names(&help("simulate"));
    assert!(serve.contains("THERMO_HDFS_URL") && simulate.contains("THERMO_KAFKA_BROKERS"));

    for name in Dockerfile::load().env().keys().filter(|k| k.starts_with("THERMO_")) {
        assert!(serve.contains(name), "Dockerfile sets {name}, unknown to `thermoalert serve`");
    }
    let compose = yaml("docker-compose.yml");
    for (name, service) in compose_services(&compose) {
        let is_simulator =
            strings(&service["command"]).first().map(String::as_str) == Some("simulate");
        let (known, what) = if is_simulator { (&simulate, "simulate") } else { (&serve, "serve") };
        for var in service_env(service).keys().filter(|k| k.starts_with("THERMO_")) {
            assert!(
                known.contains(var),
                "service {name} sets {var}, unknown to `thermoalert {what}`"
            );
        }
    }
    // Comments too: a setting named anywhere in these files exists.
    let all: BTreeSet<_> = serve.union(&simulate).cloned().collect();
    for file in ["Dockerfile", "docker-compose.yml", "deploy/entrypoint.sh"] {
        for word in thermo_words(&read(file)) {
            assert!(all.contains(&word), "{file} names {word}, which the binary does not know");
        }
    }
}

#[test]
fn ports_addresses_and_paths_line_up_across_dockerfile_compose_prometheus_and_grafana() {
    let docker = Dockerfile::load();
    let env = docker.env();
    let expose: Vec<u16> = docker
        .runtime("EXPOSE")
        .iter()
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(expose.len(), 1, "one EXPOSEd port: {expose:?}");
    let port = expose[0];
    let (listen, site_port) = host_port(&env["LEPTOS_SITE_ADDR"]);
    assert_eq!(
        (listen, site_port),
        ("0.0.0.0", port),
        "LEPTOS_SITE_ADDR: all interfaces, EXPOSEd port"
    );
    let check = docker.healthcheck();
    let authority =
        check.split("http://").nth(1).expect("the health check calls http://").split('/').next();
    let health_port = authority.unwrap().split_once(':').unwrap().1;
    assert!(
        health_port == port.to_string() || health_port == "${LEPTOS_SITE_ADDR##*:}",
        "the health check's port ({health_port}) is neither {port} nor LEPTOS_SITE_ADDR's"
    );

    let compose = yaml("docker-compose.yml");
    let services: BTreeMap<_, _> = compose_services(&compose).into_iter().collect();
    let (name, thermo) = thermoalert_service(&compose);
    assert_eq!(container_ports(thermo), vec![port], "{name}'s published port");

    // The data directory is the image's volume, and a named volume in compose.
    let mut settings = env.clone();
    settings.extend(service_env(thermo));
    let data_dir = &settings["THERMO_DATA_DIR"];
    assert_eq!(docker.runtime("VOLUME"), vec![data_dir.as_str()], "the image's VOLUME");
    assert!(
        volumes(thermo).iter().any(|(_, target)| target == data_dir),
        "{name} mounts {data_dir}"
    );

    // Kafka and HDFS addresses are the ones those services advertise.
    let brokers = &settings["THERMO_KAFKA_BROKERS"];
    let (kafka_host, _) = host_port(brokers);
    let kafka = services.get(kafka_host).unwrap_or_else(|| panic!("no service {kafka_host}"));
    let advertised = &service_env(kafka)["KAFKA_ADVERTISED_LISTENERS"];
    assert!(advertised.contains(&format!("//{brokers}")), "{kafka_host} advertises {advertised}");
    let hdfs = &settings["THERMO_HDFS_URL"];
    let (nn_host, _) = host_port(hdfs.strip_prefix("hdfs://").expect("an hdfs:// URL"));
    let namenode = services.get(nn_host).unwrap_or_else(|| panic!("no service {nn_host}"));
    assert_eq!(&service_env(namenode)["CORE-SITE.XML_fs.defaultFS"], hdfs);

    // Prometheus scrapes that port and path of that service, with the repository's config.
    let prometheus = yaml("deploy/prometheus.yml");
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str().unwrap_or("/metrics"), "/metrics");
    let targets = strings(&job["static_configs"][0]["targets"]);
    assert_eq!(targets, vec![format!("{name}:{port}")], "Prometheus's target");
    let prom = &services["prometheus"];
    assert!(
        volumes(prom)
            .contains(&("./deploy/prometheus.yml".into(), "/etc/prometheus/prometheus.yml".into()))
    );

    // Grafana: its data source is that Prometheus, its dashboards the mounted directory, and
    // every panel uses the provisioned data source.
    let source = &yaml("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"][0];
    let url = source["url"].as_str().unwrap();
    let (prom_host, prom_port) = host_port(url.strip_prefix("http://").unwrap());
    assert!(services.contains_key(prom_host), "no service {prom_host}");
    assert_eq!(container_ports(prom), vec![prom_port]);
    let provider = &yaml("deploy/grafana/provisioning/dashboards/thermoalert.yml")["providers"][0];
    let grafana = &services["grafana"];
    let dashboards = provider["options"]["path"].as_str().unwrap();
    assert!(volumes(grafana).contains(&("./deploy/grafana/dashboards".into(), dashboards.into())));
    let dashboard = dashboard();
    let uid = source["uid"].as_str().unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], uid, "panel {}", panel["title"]);
    }

    // One network for all; named volumes declared; bind-mounted files exist.
    let networks: Vec<_> = compose["networks"].as_mapping().unwrap().keys().map(scalar).collect();
    assert_eq!(networks.len(), 1, "one network");
    for (name, service) in &services {
        assert_eq!(strings(&service["networks"]), networks, "{name}'s networks");
        for (source, _) in volumes(service) {
            if source.starts_with('.') {
                assert!(repo().join(&source).exists(), "{name} mounts missing {source}");
            } else {
                assert!(
                    !compose["volumes"][source.as_str()].is_null(),
                    "volume {source} undeclared"
                );
            }
        }
    }
}

#[test]
fn the_simulator_service_passes_only_flags_that_simulate_accepts() {
    let accepted = flags(&help("simulate"));
    assert!(accepted.contains("--sensors") && accepted.contains("--rate"), "{accepted:?}");
    let compose = yaml("docker-compose.yml");
    let (_, thermo) = thermoalert_service(&compose);
    let mut simulators = 0;
    for (name, service) in compose_services(&compose) {
        let command = strings(&service["command"]);
        if command.first().map(String::as_str) != Some("simulate") {
            continue;
        }
        simulators += 1;
        assert_eq!(service["image"], thermo["image"], "{name} runs ThermoAlert's image");
        for flag in command.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(accepted.contains(flag), "{name}: `simulate` has no {flag}");
        }
        // The values parse too: clap checks each as it reads it, so an unknown flag put last
        // is the first error only if every value before it is valid.
        let out =
            thermoalert().args(&command).arg("--kafka-brokers=x:1").arg("--bad-flag").output();
        let err = String::from_utf8_lossy(&out.unwrap().stderr).into_owned();
        assert!(err.contains("--bad-flag") && !err.contains("invalid value"), "{name}: {err}");
    }
    assert_eq!(simulators, 1, "one simulator service");
}

#[test]
fn the_builder_pins_the_versions_the_project_builds_with() {
    let docker = Dockerfile::load();
    let from = docker.all("FROM");
    let builder = from[0].strip_prefix("rust:").expect("the builder is a rust image");
    let (rust, distro) = builder.split_once('-').unwrap();
    let distro = distro.split_whitespace().next().unwrap();
    let toolchain = read("rust-toolchain.toml");
    assert!(toolchain.contains(&format!("channel = \"{rust}.")), "rust:{rust} vs {toolchain}");
    assert_eq!(
        *from.last().unwrap(),
        format!("debian:{distro}-slim"),
        "same Debian as the builder"
    );

    let setup = read("scripts/setup.sh");
    let leptos = docker.arg("CARGO_LEPTOS_VERSION");
    assert!(setup.contains(&format!("CARGO_LEPTOS_VERSION={leptos}\n")), "cargo-leptos {leptos}");
    let lock = read("Cargo.lock");
    let bindgen = docker.arg("WASM_BINDGEN_VERSION");
    assert!(
        lock.contains(&format!("name = \"wasm-bindgen\"\nversion = \"{bindgen}\"")),
        "{bindgen}"
    );

    let runs = docker.all("RUN").join("\n");
    assert!(
        runs.contains("scripts/services.sh fetch hdfs"),
        "Hadoop jars as services.sh fetches them"
    );
    assert!(runs.contains("cargo leptos build --release --bin-features hdfs"), "{runs}");
    let services = read("scripts/services.sh");
    let compose = yaml("docker-compose.yml");
    let kafka = compose["services"]["kafka"]["image"].as_str().unwrap();
    let version = kafka.strip_prefix("apache/kafka:").unwrap();
    assert!(services.contains(&format!("KAFKA_VERSION={version}\n")), "{kafka} vs services.sh");

    let user = docker.runtime("USER");
    assert!(
        !user.is_empty() && !["root", "0"].contains(user.last().unwrap()),
        "non-root: {user:?}"
    );
    let ignored = read(".dockerignore");
    for path in ["target/", "node_modules/", "data/"] {
        assert!(ignored.lines().any(|l| l.ends_with(path)), ".dockerignore lacks {path}");
    }
}

#[test]
fn the_entrypoint_runs_what_the_image_copies_where_its_settings_say() {
    let docker = Dockerfile::load();
    let env = docker.env();
    let copies = docker.runtime("COPY");
    let dest_of = |source: &str| {
        let words = copies.iter().map(|c| c.split_whitespace().collect::<Vec<_>>());
        let found = words.into_iter().find(|w| w.contains(&source));
        found.map(|w| w.last().unwrap().trim_end_matches('/').to_owned())
    };
    let entrypoint = docker.exec_form("ENTRYPOINT");
    assert_eq!(dest_of("deploy/entrypoint.sh").as_ref(), Some(&entrypoint[0]));
    let script = read("deploy/entrypoint.sh");
    let dir = entrypoint[0].rsplit_once('/').unwrap().0;
    assert_eq!(dest_of("/src/target/release/thermoalert"), Some(format!("{dir}/thermoalert")));
    assert!(script.contains(r#"exec "$here/thermoalert" "$@""#), "execs the binary beside it");
    assert_eq!(docker.exec_form("CMD"), ["serve"]);
    assert_eq!(dest_of("/src/target/site").as_ref(), Some(&env["LEPTOS_SITE_ROOT"]));
    for (var, source) in
        [("HADOOP_LIB", "/opt/hadoop-lib"), ("HADOOP_CONF_DIR", "deploy/hadoop/hdfs-site.xml")]
    {
        assert_eq!(dest_of(source).as_ref(), Some(&env[var]), "{var}");
        let default = format!("{var}=${{{var}:-{}}}", env[var]);
        assert!(script.contains(&default), "the entrypoint's default is the image's: {default}");
    }
    // Compose's client settings for its one DataNode replace the image's.
    let compose = yaml("docker-compose.yml");
    let conf = format!("{}/hdfs-site.xml", env["HADOOP_CONF_DIR"]);
    let mounts = volumes(thermoalert_service(&compose).1);
    assert!(mounts.iter().any(|(_, target)| *target == conf), "compose mounts {conf}");
}

// ------------------------------------------------------------------ a running server

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/thermoalert.json")).unwrap()
}

/// The image's environment, its absolute paths moved under `root`.
fn image_env(docker: &Dockerfile, root: &Path) -> BTreeMap<String, String> {
    let mut env = docker.env();
    for value in env.values_mut().filter(|v| v.starts_with('/')) {
        *value = root.join(value.trim_start_matches('/')).display().to_string();
    }
    env
}

/// Runs the image's HEALTHCHECK command as Docker would (`/bin/sh -c`) for a server on `addr`.
fn run_healthcheck(docker: &Dockerfile, addr: &str) -> bool {
    let status = Command::new("sh")
        .args(["-c", &docker.healthcheck()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEPTOS_SITE_ADDR", addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sh runs");
    status.success()
}

/// Metric families the source declares (`telemetry.rs`): name → counter, gauge or histogram;
/// and the label names it uses.
fn declared_metrics() -> (BTreeMap<String, String>, BTreeSet<String>) {
    let source = read("server/src/telemetry.rs");
    let consts = |source: &str| -> BTreeMap<String, String> {
        source
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("pub const "))
            .filter_map(|rest| rest.split_once(": &str = "))
            .map(|(ident, value)| {
                (ident.to_owned(), value.trim_end_matches(';').trim_matches('"').to_owned())
            })
            .collect()
    };
    let mut names = consts(&source);
    // Names defined where they are counted, re-exported here (a `use` may span lines):
    // `pub use thermoalert_app::a::b::{X, Y};` reads `app/src/a/b.rs`, and the labels counted
    // there count too.
    let mut counted = source.clone();
    for (i, _) in source.match_indices("pub use thermoalert_") {
        let statement = &source[i + "pub use thermoalert_".len()..];
        let statement = &statement[..statement.find(';').unwrap()];
        let (path, idents) =
            statement.split_once("::{").unwrap_or_else(|| statement.rsplit_once("::").unwrap());
        let (krate, module) = path.split_once("::").unwrap();
        let module = format!("{krate}/src/{}", module.replace("::", "/"));
        let flat = format!("{module}.rs");
        let file = if repo().join(&flat).exists() {
            read(&flat)
        } else {
            read(&format!("{module}/mod.rs"))
        };
        let theirs = consts(&file);
        for ident in idents.trim_end_matches('}').split(',').map(str::trim) {
            if !ident.is_empty() {
                names.insert(ident.to_owned(), theirs[ident].clone());
            }
        }
        counted.push_str(&file);
    }
    let mut kinds = BTreeMap::new();
    for kind in ["counter", "gauge", "histogram"] {
        for (i, _) in source.match_indices(&format!("describe_{kind}!(")) {
            let rest = source[i..].split_once('(').unwrap().1.trim_start();
            let ident = rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next();
            kinds.insert(names[ident.unwrap()].clone(), kind.to_owned());
        }
    }
    assert_eq!(kinds.len(), names.len(), "every metric is described: {names:?}");
    let labels = counted
        .split("=>")
        .filter_map(|before| before.trim_end().strip_suffix('"')?.rsplit('"').next())
        .map(str::to_owned)
        .collect();
    (kinds, labels)
}

/// Checks the dashboard's queries against the declared metrics: names (histograms through
/// their `_bucket`, `_sum` and `_count` series) and the labels they group or select by.
fn check_dashboard(kinds: &BTreeMap<String, String>, labels: &BTreeSet<String>) {
    let mut exprs = Vec::new();
    for panel in dashboard()["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for (i, _) in expr.match_indices("thermoalert_") {
            let rest = &expr[i..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap();
            let series = &rest[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    series
                        .strip_suffix(s)
                        .filter(|f| kinds.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(series);
            assert!(
                kinds.contains_key(family),
                "`{expr}` uses {series}, which the server does not export"
            );
            if kinds[family] == "histogram" {
                assert_ne!(series, family, "`{expr}`: a histogram is queried through its series");
            }
            used.insert(family.to_owned());
        }
        let grouped = expr.split("by (").skip(1).map(|s| s.split(')').next().unwrap());
        let selected = expr.split('{').skip(1).map(|s| s.split('}').next().unwrap());
        for label in grouped.chain(selected).flat_map(|s| s.split(',')) {
            let label = label.split(['=', '!', '~']).next().unwrap().trim();
            assert!(label == "le" || labels.contains(label), "`{expr}`: no label `{label}`");
        }
    }
    // Every metric the server declares has a panel (a new metric needs one).
    let unused: Vec<_> = kinds.keys().filter(|k| !used.contains(*k)).collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}

#[test]
fn the_healthcheck_scrape_path_and_dashboard_metrics_answer_on_a_running_server() {
    let docker = Dockerfile::load();
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    // The image's own settings (paths moved under the temporary root), embedded mode.
    let mut server = Server::start(
        thermoalert()
            .envs(image_env(&docker, root.path()))
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("THERMO_FLUSH_INTERVAL", "300ms")
            .env("THERMO_SIM_SENSORS", "2"),
        root.path().join("server.log"),
    );
    let nobody = format!("127.0.0.1:{}", free_port());
    assert!(!run_healthcheck(&docker, &nobody), "the health check passes with no server");
    let addr = format!("127.0.0.1:{port}");
    server.wait_for("healthz", 60, || get(port, "/healthz").is_some_and(|r| r.ok()));
    assert!(run_healthcheck(&docker, &addr), "the HEALTHCHECK command fails on a healthy server");

    // A live-stream client, so that its gauge is exported too.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.read(&mut [0u8; 256]);
    let scrape = yaml("deploy/prometheus.yml")["scrape_configs"][0]["metrics_path"]
        .as_str()
        .map(str::to_owned);
    let path = scrape.unwrap_or_else(|| "/metrics".into());
    let mut metrics = String::new();
    server.wait_for("a flush in the metrics", 60, || {
        metrics = get(port, &path).filter(|r| r.ok()).map(|r| r.body).unwrap_or_default();
        metrics.contains("thermoalert_flush_seconds_bucket")
            && metrics.contains("thermoalert_sse_clients")
            && metrics.contains("thermoalert_consumer_lag")
    });
    drop(stream);

    // What the server exports agrees with what the source declares, then the dashboard with both.
    let (kinds, labels) = declared_metrics();
    let exported: BTreeMap<&str, &str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .filter(|(name, _)| name.starts_with("thermoalert_"))
        .collect();
    assert!(exported.len() >= 5, "{metrics}");
    for (name, kind) in &exported {
        assert_eq!(
            kinds.get(*name).map(String::as_str),
            Some(*kind),
            "{name} is exported as a {kind}"
        );
    }
    check_dashboard(&kinds, &labels);
}

// ------------------------------------------------------------------ the smoke test

#[cfg(feature = "hdfs")]
mod smoke {
    use super::*;
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Instant;
    use thermoalert_pipeline::topics;

    const BROKERS: &str = "127.0.0.1:9092";
    const HDFS: &str = "hdfs://127.0.0.1:9000";

    fn services_script(arg: &str) -> String {
        let out = Command::new(repo().join("scripts/services.sh")).arg(arg).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/services.sh {arg}: {err}\n(start them: scripts/services.sh start)"
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The directory of the Hadoop client jars `scripts/services.sh env` puts in CLASSPATH.
    fn hadoop_jars() -> PathBuf {
        let env = services_script("env");
        let classpath = env.lines().find_map(|l| l.strip_prefix("export CLASSPATH=")).unwrap();
        let jar = classpath.trim_matches('\'').split(':').find(|p| p.ends_with(".jar")).unwrap();
        Path::new(jar).parent().unwrap().to_owned()
    }

    /// Where the builder stage's outputs are on this machine.
    fn builder_output(path: &str, jars: &Path) -> PathBuf {
        let binary = Path::new(env!("CARGO_BIN_EXE_thermoalert"));
        match path {
            "/src/target/release/thermoalert" => binary.to_owned(),
            "/src/target/site" => binary.parent().unwrap().parent().unwrap().join("site"),
            "/opt/hadoop-lib" => jars.to_owned(),
            other => panic!("the smoke test does not know what the builder puts at {other}"),
        }
    }

    fn copy(from: &Path, to: &Path) {
        if from.is_dir() {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                copy(&entry.path(), &to.join(entry.file_name()));
            }
        } else {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
    }

    /// Lays out under `root` what the runtime stage's COPY instructions put in the image.
    fn install_runtime_stage(docker: &Dockerfile, root: &Path, jars: &Path) {
        use std::os::unix::fs::PermissionsExt;
        for args in docker.runtime("COPY") {
            let words: Vec<&str> = args.split_whitespace().collect();
            let (options, paths): (Vec<&str>, Vec<&str>) =
                words.iter().partition(|w| w.starts_with("--"));
            let from_builder = options.iter().any(|o| o.starts_with("--from="));
            let mode = options.iter().find_map(|o| o.strip_prefix("--chmod="));
            let (dest, sources) = paths.split_last().unwrap();
            for source in sources {
                let from =
                    if from_builder { builder_output(source, jars) } else { repo().join(source) };
                if !from.exists() && source.ends_with("/site") {
                    eprintln!("note: no {} (`cargo leptos build` makes it)", from.display());
                    continue;
                }
                let mut to = root.join(dest.trim_start_matches('/'));
                if dest.ends_with('/') {
                    to = to.join(from.file_name().unwrap());
                }
                copy(&from, &to);
                if let Some(mode) = mode {
                    let mode = u32::from_str_radix(mode, 8).unwrap();
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
                }
            }
        }
        for volume in docker.runtime("VOLUME") {
            std::fs::create_dir_all(root.join(volume.trim_start_matches('/'))).unwrap();
        }
    }

    fn publish(sensor: &str, values: std::ops::Range<u32>) {
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", BROKERS).create().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        for i in values {
            let reading = serde_json::json!({
                "timestamp": now.as_secs_f64() - 60.0 + f64::from(i),
                "sensor_id": sensor,
                "temperature": 20.0 + f64::from(i) / 10.0,
            });
            let payload = reading.to_string();
            let record = BaseRecord::to(topics::READINGS).key(sensor).payload(&payload);
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    fn readings(port: u16, sensor: &str) -> usize {
        let json = common::get_json(port, &format!("/api/readings?sensor={sensor}"));
        json["readings"].as_array().map_or(0, Vec::len)
    }

    #[test]
    #[ignore = "needs the real Kafka and HDFS: scripts/services.sh start"]
    fn what_the_image_holds_serves_readings_from_real_kafka_and_hdfs() {
        services_script("status");
        let docker = Dockerfile::load();
        let root = tempfile::tempdir().unwrap();
        install_runtime_stage(&docker, root.path(), &hadoop_jars());
        let inside = |p: &str| root.path().join(p.trim_start_matches('/'));
        let env = image_env(&docker, root.path());
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let group = format!("deploy-smoke-{}-{}", std::process::id(), stamp.as_millis());
        let sensor = format!("smoke-{}", stamp.as_millis());
        common::commit_group_at_end(BROKERS, &group);

        let port = free_port();
        let entrypoint = docker.exec_form("ENTRYPOINT");
        let mut server = Server::start(
            Command::new(inside(&entrypoint[0]))
                .args(&entrypoint[1..])
                .args(docker.exec_form("CMD"))
                .current_dir(inside(docker.runtime("WORKDIR").last().unwrap()))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(&env)
                .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
                .env("THERMO_KAFKA_BROKERS", BROKERS)
                .env("THERMO_HDFS_URL", HDFS)
                .env("THERMO_GROUP", &group)
                .env("THERMO_FLUSH_INTERVAL", "1s"),
            root.path().join("server.log"),
        );

        server.wait_for("healthz", 90, || get(port, "/healthz").is_some_and(|r| r.ok()));
        let healthy = run_healthcheck(&docker, &format!("127.0.0.1:{port}"));
        assert!(healthy, "HEALTHCHECK; log:\n{}", server.log());
        server.wait_for("readyz", 60, || get(port, "/readyz").is_some_and(|r| r.ok()));

        // Two batches a few flushes apart: the second appends to the first's archive file.
        publish(&sensor, 0..10);
        server.wait_for("the first readings", 60, || readings(port, &sensor) == 10);
        std::thread::sleep(Duration::from_secs(2));
        publish(&sensor, 10..20);
        server.wait_for("the appended readings", 60, || readings(port, &sensor) == 20);

        let data = PathBuf::from(&env["THERMO_DATA_DIR"]);
        assert!(data.join("index.sqlite").exists(), "the index is in THERMO_DATA_DIR");
        assert!(!data.join("archive").exists(), "the archive went to HDFS, not {}", data.display());
        assert_eq!(get(port, "/").map(|r| r.status), Some(200), "the page; log:\n{}", server.log());
        if Path::new(&env["LEPTOS_SITE_ROOT"]).join("pkg/thermoalert.css").exists() {
            assert_eq!(get(port, "/pkg/thermoalert.css").map(|r| r.status), Some(200));
        }

        // The entrypoint execs: SIGTERM reaches the server, which stops cleanly.
        let pid = server.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(40);
        let exit = loop {
            if let Some(exit) = server.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "no exit 40 s after SIGTERM; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = server.log();
        assert!(exit.success() && text.contains("stopped cleanly"), "exit {exit:?}; log:\n{text}");
        assert!(text.contains(HDFS), "the start-up log names the HDFS archive:\n{text}");
    }
}

/// The README's notifications example, checked by `thermoalert notify check` as written: with
/// its secrets' variables set it passes, without them the error names the entry and variable.
#[test]
fn the_readme_notifications_example_passes_its_own_check() {
    let readme = read("README.md");
    let section = readme.split("## Notifications").nth(1).expect("a notifications section");
    let example = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notify.toml");
    std::fs::write(&file, example.expect("a TOML example")).unwrap();
    let check = |env: &[(&str, &str)]| {
        let out = thermoalert()
            .args(["notify", "check"])
            .arg(&file)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let secrets = [("THERMO_SMTP_PASSWORD", "pw"), ("THERMO_HOOK_SECRET", "key")];
    let (ok, text) = check(&secrets);
    assert!(ok, "{text}");
    assert!(text.contains("2 contact points, 1 routes, 1 silences: OK"), "{text}");
    let (ok, text) = check(&secrets[1..]);
    assert!(!ok, "a secret's variable is missing: {text}");
    assert!(text.contains("contact point 1 (`night-shift`)"), "{text}");
    assert!(text.contains("`THERMO_SMTP_PASSWORD` is not set"), "{text}");
}

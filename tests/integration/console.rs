//! End to end: scripted sessions piped to the `warroom console` binary, on both stores.

use crate::support::PgSchema;
use std::io::Write;
use std::process::{Command, Stdio};

pub fn warroom() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warroom"));
    // The tests choose the store; the developer's environment must not.
    for (key, _) in std::env::vars() {
        if key.starts_with("WARROOM_") && key.contains("__") {
            command.env_remove(key);
        }
    }
    command.env_remove("WARROOM_CONFIG");
    command
}

/// Run a console session with `script` on stdin; returns stdout. Fails on a non-zero exit.
pub fn console(args: &[&str], env: &[(String, String)], script: &str) -> String {
    let mut child = warroom()
        .arg("console")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warroom console");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "console failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The channel warroom named for an incident, read from the declaration reply.
fn channel_of(output: &str, key: &str) -> String {
    let marker = format!("Declared {key} in #");
    let line = output
        .lines()
        .find_map(|l| l.split_once(&marker).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{key} was not declared:\n{output}"));
    line.split(". ").next().unwrap().to_string()
}

/// Lines posted in `channel`.
fn lines_in<'a>(output: &'a str, channel: &str) -> Vec<&'a str> {
    let prefix = format!("[#{channel}] ");
    output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

fn assert_has(output: &str, channel: &str, needle: &str) {
    assert!(
        lines_in(output, channel).iter().any(|l| l.contains(needle)),
        "no line containing {needle:?} in #{channel}:\n{output}"
    );
}

const LIFECYCLE: &str = "\
declare API returning 503s
:channel INC-1
ack
sev P0
commander @bob
status identified
update Rolled back the 14:02 deploy
:advance 31m
:as bob
status monitoring
resolve expired TLS certificate on the load balancer
ack
timeline
:channel general
list --all
:quit
declare never read
";

fn lifecycle(args: &[&str], env: &[(String, String)]) {
    let out = console(args, env, LIFECYCLE);
    let channel = channel_of(&out, "INC-1");
    assert!(
        channel.starts_with("inc-") && channel.ends_with("-api-returning-503s"),
        "{channel}"
    );
    assert_has(&out, &channel, &format!("now in #{channel}"));
    // declare: reply, channel, alert with buttons, announcement
    assert_has(&out, "general", "(only you) Declared INC-1 in #");
    assert_has(
        &out,
        "general",
        "Severity P1 because the title mentions \"503\"",
    );
    assert_has(&out, &channel, "* channel created; invited @alice");
    assert_has(&out, &channel, "🚨 INCIDENT ALERT - P1");
    assert_has(&out, &channel, "Title: API returning 503s");
    assert_has(&out, &channel, "Incident Commander: @alice");
    assert_has(
        &out,
        &channel,
        "buttons: [1] Acknowledge (primary)  [2] Resolve (danger)",
    );
    assert_has(
        &out,
        "incidents",
        "🚨 INC-1 (P1) declared by @alice: API returning 503s",
    );
    // ack, sev, commander, status, update
    assert_has(
        &out,
        &channel,
        "INC-1: @alice acknowledged 0s after declaration (within the 1h target); escalation stopped.",
    );
    assert_has(
        &out,
        &channel,
        "INC-1: @alice changed severity P1 → P0 (Critical); respond within 15m",
    );
    assert_has(
        &out,
        &channel,
        "INC-1: @alice made @bob incident commander.",
    );
    assert_has(
        &out,
        &channel,
        "INC-1: @alice moved status acknowledged → identified.",
    );
    assert_has(
        &out,
        &channel,
        "📣 INC-1 status update from @alice (identified):",
    );
    assert_has(&out, &channel, "Rolled back the 14:02 deploy");
    assert_has(
        &out,
        &channel,
        "* topic: INC-1 P0 | identified | commander @bob | API returning 503s",
    );
    // the virtual clock runs the status reminder
    assert_has(
        &out,
        &channel,
        "⏰ INC-1: no status update for 31m. @bob, please post one",
    );
    // resolve, then an invalid transition
    assert_has(&out, &channel, "✅ INCIDENT RESOLVED - P0");
    assert_has(
        &out,
        &channel,
        "Root Cause: expired TLS certificate on the load balancer",
    );
    assert_has(
        &out,
        &channel,
        "A detailed post-mortem will be published within 48h.",
    );
    assert_has(
        &out,
        "incidents",
        "✅ INC-1 (P0) resolved by @bob after 31m",
    );
    assert_has(&out, &channel, "(only you) INC-1 was resolved at");
    // the timeline, in order
    let timeline: Vec<&str> = lines_in(&out, &channel)
        .into_iter()
        .skip_while(|l| !l.contains("Timeline of INC-1"))
        .skip(1)
        .take(10)
        .collect();
    let expected = [
        "@alice: declared \"API returning 503s\" (P1 because the title mentions \"503\")",
        "warroom: escalated to step 1 (On-call engineer); mentioned @oncall",
        "@alice: acknowledged",
        "@alice: severity P1 → P0",
        "@alice: commander @alice → @bob",
        "@alice: status acknowledged → identified",
        "@alice: update: Rolled back the 14:02 deploy",
        "(+31m) warroom: status-update reminder sent",
        "(+31m) @bob: status identified → monitoring",
        "(+31m) @bob: resolved; root cause: expired TLS certificate on the load balancer",
    ];
    assert_eq!(timeline.len(), expected.len(), "{out}");
    for (line, want) in timeline.iter().zip(expected) {
        assert!(
            line.contains(want),
            "timeline line {line:?} should contain {want:?}\n{out}"
        );
    }
    assert_has(&out, "general", "INC-1 P0 resolved — API returning 503s");
    assert!(!out.contains("never read"), ":quit stops reading");
}

#[test]
fn scripted_lifecycle_on_sqlite() {
    lifecycle(&["--ephemeral", "--virtual-clock", "--as", "alice"], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_lifecycle_on_postgres() {
    let Some(db) = PgSchema::create().await else {
        return;
    };
    let env = db.env();
    tokio::task::spawn_blocking(move || lifecycle(&["--virtual-clock", "--as", "alice"], &env))
        .await
        .unwrap();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_url_flag_selects_postgres() {
    let Some(db) = PgSchema::create().await else {
        return;
    };
    let url = format!("{}?options=-csearch_path%3D{}", db.url, db.schema);
    let out = tokio::task::spawn_blocking(move || {
        console(&["--database-url", &url, "--as", "alice"], &[], "list\n")
    })
    .await
    .unwrap();
    assert!(out.contains("on the postgres store"), "{out}");
    db.cleanup().await;
}

#[test]
fn a_file_store_keeps_incidents_across_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap();
    let first = console(
        &["--db", db, "--as", "alice"],
        &[],
        "declare Search is slow\n",
    );
    assert!(first.contains("Declared INC-1"), "{first}");
    let channel = channel_of(&first, "INC-1");
    let second = console(
        &["--db", db, "--as", "bob", "--channel", &channel],
        &[],
        "ack\nlist\n",
    );
    assert_has(&second, &channel, "INC-1: @bob acknowledged");
    assert_has(&second, &channel, "INC-1 P1 acknowledged — Search is slow");
}

#[test]
fn buttons_work_with_click_and_confirm() {
    // After the acknowledgement the summary is printed again with Resolve as its only button.
    let script = "declare Queue backlog growing\n:click 1\n:click 1\nno\n:click 1\ny\n:click 9\n";
    let out = console(&["--ephemeral", "--as", "alice"], &[], script);
    let channel = channel_of(&out, "INC-1");
    assert_has(&out, "general", "* @alice pressed Acknowledge");
    assert_has(&out, &channel, "INC-1: @alice acknowledged");
    assert_has(
        &out,
        "general",
        "* Resolve INC-1? This marks INC-1 as resolved",
    );
    assert_has(&out, "general", "* cancelled; nothing was changed");
    assert_has(&out, &channel, "✅ INCIDENT RESOLVED - P2");
    assert_has(&out, "general", "* usage: :click N");
    assert_eq!(out.matches("INCIDENT RESOLVED").count(), 1, "{out}");
}

#[test]
fn console_meta_commands() {
    let out = console(
        &["--ephemeral", "--as", "alice"],
        &[],
        ":help\n:advance 5m\n:as <!here>\n:as carol\n:channel\n:channel INC-9\n:frob\n:channel ops\nlist\n",
    );
    assert_has(&out, "general", "console commands: :channel NAME");
    assert_has(
        &out,
        "general",
        ":advance needs the console started with --virtual-clock",
    );
    assert_has(&out, "general", "usage: :as USER");
    assert_has(&out, "general", "now acting as @carol");
    assert_has(&out, "general", "usage: :channel NAME or :channel INC-n");
    assert_has(&out, "general", "INC-9 does not exist");
    assert_has(&out, "general", "unknown console command :frob");
    assert_has(&out, "ops", "No open incidents.");
}

#[test]
fn bad_input_gets_usage_and_changes_nothing() {
    let long_title = format!("declare {}", "x".repeat(10_000));
    let script = [
        "/incident",
        "frobnicate now",
        "sev P7",
        long_title.as_str(),
        "declare DB\u{1}\u{7} down\u{1b}[31m now",
        "declare !!! ??? ...",
        "declare <!channel> @here look & see",
        "list",
    ]
    .join("\n");
    let out = console(&["--ephemeral", "--as", "alice"], &[], &script);
    let general = lines_in(&out, "general").join("\n");
    assert!(
        general.contains("(only you) No command given."),
        "{general}"
    );
    assert!(
        general.contains("(only you) Unknown command `frobnicate`."),
        "{general}"
    );
    assert!(
        general.contains("  /incident declare <title> [--sev P0|P1|P2|P3]"),
        "usage lists every command: {general}"
    );
    assert!(
        general.contains("(only you) `P7` is not a severity; use one of P0, P1, P2, P3"),
        "{general}"
    );
    assert!(
        general.contains("  /incident sev <P0|P1|P2|P3>"),
        "{general}"
    );
    assert!(
        general.contains("The title is 10000 characters long; keep it under 200"),
        "{general}"
    );
    assert!(
        !out.contains(&"x".repeat(300)),
        "the long title is not echoed"
    );
    // Control characters are cleaned; the title is stored without them.
    assert!(general.contains("Declared INC-1 in #inc-"), "{general}");
    assert!(out.contains("Title: DB down [31m now"), "{out}");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}'),
        "no control characters reach the terminal"
    );
    // Only punctuation: the channel slug is still valid.
    let punct = channel_of(&out, "INC-2");
    assert!(punct.ends_with("-incident"), "{punct}");
    assert_has(&out, &punct, "Title: !!! ??? ...");
    // A mass mention in a title is neutralised everywhere it is shown.
    let mention = channel_of(&out, "INC-3");
    assert!(mention.ends_with("-channel-here-look-see"), "{mention}");
    assert_has(
        &out,
        &mention,
        "Title: <!\u{200B}channel> @\u{200B}here look & see",
    );
    assert!(
        !out.contains("<!channel>") && !out.contains("@here"),
        "{out}"
    );
    // Three incidents were declared; the bad commands declared nothing.
    assert!(
        general.contains("INC-3") && !general.contains("INC-4"),
        "{general}"
    );
}

#[test]
fn check_accepts_the_defaults_and_reports_problems_with_lines() {
    let ok = warroom().arg("check").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok:"));

    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("incident_alert.hbs"),
        "🚨 {{title}}\n{{#if severity}}\nno end\n",
    )
    .unwrap();
    std::fs::write(templates.join("notice.hbs"), "{{text}} {{missing_value}}\n").unwrap();
    let config = dir.path().join("warroom.toml");
    std::fs::write(
        &config,
        format!(
            "[templates]\ndir = {:?}\n\n[severities.p1]\nrespond_within = \"an hour\"\n",
            templates.display()
        ),
    )
    .unwrap();
    let bad = warroom()
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(
        stdout.contains(&format!(
            "{}:5: severities.p1.respond_within: `an hour` is not a duration",
            config.display()
        )),
        "{stdout}"
    );

    std::fs::write(
        &config,
        format!("[templates]\ndir = {:?}\n", templates.display()),
    )
    .unwrap();
    let bad = warroom()
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(stdout.contains("incident_alert.hbs:"), "{stdout}");
    std::fs::remove_file(templates.join("incident_alert.hbs")).unwrap();
    let bad = warroom()
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(
        stdout.contains("notice.hbs") && stdout.contains("missing_value"),
        "{stdout}"
    );
}

#[test]
fn environment_overrides_reach_the_binary_and_name_the_variable() {
    let out = warroom()
        .arg("check")
        .env("WARROOM_SEVERITIES__P0__RESPOND_WITHIN", "soonish")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("environment variable WARROOM_SEVERITIES__P0__RESPOND_WITHIN: severities.p0.respond_within"), "{stdout}");
}

#[test]
fn migrate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out = warroom()
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
            "sqlite: schema is at version {}",
            warroom::store::SCHEMA_VERSION
        )));
    }
    let bad = warroom()
        .args(["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must start with postgres://"));
}

/// `--database-url` names the server; the schema and pool size still come from the
/// configuration (here the environment), even when the configuration names no URL itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_with_a_database_url_keeps_the_configured_schema() {
    let Some(db) = PgSchema::create().await else {
        return;
    };
    let (url, schema) = (db.url.clone(), db.schema.clone());
    let out = tokio::task::spawn_blocking(move || {
        warroom()
            .args(["migrate", "--database-url", &url])
            .env_remove("WARROOM_DATABASE__URL")
            .env("WARROOM_DATABASE__SCHEMA", &schema)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("(schema {})", db.schema)),
        "{stdout}"
    );
    // The tables are in that schema.
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('incidents', 'schema_migrations')",
            &[&db.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2);
    drop(client);
    let _ = task.await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_on_postgres_never_prints_the_password() {
    let Some(db) = PgSchema::create().await else {
        return;
    };
    // The test server trusts local connections, so any password works; it must never show.
    let with_password = db.url.replacen("://postgres@", "://postgres:s3cret-pw@", 1);
    assert!(
        with_password.contains("s3cret-pw"),
        "test URL has the expected shape: {}",
        db.url
    );
    let schema = db.schema.clone();
    let unreachable = "postgres://postgres:s3cret-pw@127.0.0.1:1/test".to_string();
    let (ok, failed) = tokio::task::spawn_blocking(move || {
        let ok = warroom()
            .arg("migrate")
            .env("WARROOM_DATABASE__URL", &with_password)
            .env("WARROOM_DATABASE__SCHEMA", &schema)
            .env("WARROOM_LOG", "debug")
            .output()
            .unwrap();
        let failed = warroom()
            .args(["migrate", "--database-url", &unreachable])
            .output()
            .unwrap();
        (ok, failed)
    })
    .await
    .unwrap();
    let all = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(ok.status.success(), "{}", all(&ok));
    assert!(
        all(&ok).contains(&format!(
            "postgres: schema is at version {} (schema {})",
            warroom::store::SCHEMA_VERSION,
            db.schema
        )),
        "{}",
        all(&ok)
    );
    assert!(!failed.status.success());
    assert!(
        all(&failed).contains("error connecting to server"),
        "the cause is shown: {}",
        all(&failed)
    );
    for output in [&ok, &failed] {
        assert!(
            !all(output).contains("s3cret-pw"),
            "the password leaked: {}",
            all(output)
        );
    }
    db.cleanup().await;
}

//! Every command, subcommand and argument of `ssal` has a help line in `--help`.
use std::process::Command;

fn help(path: &[String]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ssal")).args(path).arg("--help").output().unwrap();
    assert!(o.status.success(), "ssal {} --help: {}", path.join(" "), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The items of clap's `Arguments:`, `Options:` and `Commands:` sections that have no
/// description, and the names of the listed commands. An item's description is either on its
/// own line after two or more spaces (short layout) or on the next line, indented further (long
/// layout, used when some argument has a long help).
fn undocumented(text: &str) -> (Vec<String>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut missing, mut commands) = (Vec::new(), Vec::new());
    let mut section = "";
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        if line.trim().is_empty() || !matches!(section, "Arguments:" | "Options:" | "Commands:") || indent(line) > 6 {
            continue;
        }
        let item = line.trim_start();
        let (name, same_line) = match item.split_once("  ") {
            Some((name, rest)) => (name, !rest.trim().is_empty()),
            None => (item, false),
        };
        let next_line = lines.get(i + 1).is_some_and(|n| !n.trim().is_empty() && indent(n) > indent(line) + 2);
        if !same_line && !next_line {
            missing.push(format!("{section} {name}"));
        }
        if section == "Commands:" && name != "help" {
            commands.push(name.trim().to_string());
        }
    }
    (missing, commands)
}

#[test]
fn the_parser_sees_a_missing_description() {
    let text = "Usage: x\n\nArguments:\n  <FILE>  A file\n  <DIRS>...\n\nOptions:\n      --db <DB>\n          \
                The database\n\n      --bare <B>\n\n  -h, --help  Print help\n\nCommands:\n  go  Go\n  stay\n";
    let (missing, commands) = undocumented(text);
    assert_eq!(missing, vec!["Arguments: <DIRS>...", "Options: --bare <B>", "Commands: stay"]);
    assert_eq!(commands, vec!["go", "stay"]);
}

#[test]
fn every_argument_of_every_command_has_a_help_line() {
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    let mut missing = Vec::new();
    while let Some(path) = queue.pop() {
        let text = help(&path);
        seen += 1;
        let (undocumented, commands) = undocumented(&text);
        missing.extend(undocumented.into_iter().map(|m| format!("ssal {}: {m}", path.join(" "))));
        queue.extend(commands.into_iter().map(|c| [path.clone(), vec![c]].concat()));
    }
    // ssal, its 9 commands, data's 1, sweep's 5 and results' 2.
    assert!(seen >= 18, "only {seen} help pages found");
    assert!(missing.is_empty(), "arguments without help:\n{}", missing.join("\n"));
}

/// The analysis-only build (no `torch` feature) keeps every command in its help and refuses the
/// ones that need libtorch with one line saying so and how to get them, exit code 2.
#[test]
#[cfg(not(feature = "torch"))]
fn the_analysis_only_build_says_which_commands_need_libtorch() {
    for args in [
        &["run", "--config", "x.toml"][..],
        &["info"],
        &["select", "--embeddings", "x.npy", "--k", "1", "--temperature", "0", "--device", "cuda"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ssal")).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("needs libtorch") && err.contains("analysis-only build"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

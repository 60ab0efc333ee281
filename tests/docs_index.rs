//! The documentation that names code is checked against the code, so it cannot rot:
//! every test docs/guarantees.md names exists, and the one table of configuration
//! variables (the `todo_store::config` module docs) lists exactly the variables
//! `DbConfig::from_env` reads. Reads files only: no database.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The backticked spans of `text`, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Names of the functions defined in `source` (`fn name(` or `fn name<`).
fn fn_names(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("fn ") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 3..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // part of a longer word
        }
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest.trim_start()[name.len()..].trim_start();
        if !name.is_empty() && (after.starts_with('(') || after.starts_with('<')) {
            names.insert(name);
        }
    }
    names
}

/// The `.rs` files of a folder, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `name` (where `*` stands for any run of characters) matches `candidate`.
fn glob_matches(pattern: &str, candidate: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == candidate;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !candidate.starts_with(first) || candidate.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &candidate[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

fn is_path(span: &str) -> bool {
    ["tests/", "src/", "examples/", "benches/", "fuzz/"]
        .iter()
        .any(|p| span.starts_with(p))
}

fn is_test_name(span: &str) -> bool {
    !span.is_empty()
        && span.starts_with(|c: char| c.is_ascii_lowercase() || c == '_' || c == '*')
        && span
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '*')
}

/// What the "proved by" cells of docs/guarantees.md name, checked against the tree.
/// Returns one line per problem.
fn guarantee_problems(guarantees: &str) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut names_checked = 0;
    let rows = guarantees
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| property |"));
    for row in rows {
        let cells = row.trim_end().trim_end_matches('|').trim_end();
        let Some((_, proof)) = cells.rsplit_once(" | ") else {
            problems.push(format!("a row without a \"proved by\" cell: {row}"));
            continue;
        };
        // The functions of the path named last; a test name before any path is an error.
        let mut current: Option<(String, BTreeSet<String>)> = None;
        for span in backticked(proof) {
            if is_path(span) {
                let full = root().join(span);
                let mut files = Vec::new();
                if span.ends_with('/') || full.is_dir() {
                    if full.is_dir() {
                        rust_files(&full, &mut files);
                    }
                } else if full.is_file() {
                    files.push(full.clone());
                }
                if files.is_empty() {
                    problems.push(format!("`{span}` does not exist (row: {proof})"));
                    current = None;
                    continue;
                }
                let mut names = BTreeSet::new();
                for file in &files {
                    names.extend(fn_names(&fs::read_to_string(file).unwrap()));
                }
                current = Some((span.to_string(), names));
            } else if is_test_name(span) {
                names_checked += 1;
                match &current {
                    None => problems.push(format!(
                        "`{span}` follows no existing test path (row: {proof})"
                    )),
                    Some((path, names)) => {
                        if !names.iter().any(|n| glob_matches(span, n)) {
                            problems.push(format!("`{path}` has no `fn {span}(`"));
                        }
                    }
                }
            } else {
                problems.push(format!(
                    "`{span}` in a \"proved by\" cell is neither a path nor a test name \
                     (row: {proof})"
                ));
            }
        }
    }
    (problems, names_checked)
}

#[test]
fn every_test_the_guarantees_name_exists() {
    let guarantees = read("docs/guarantees.md");
    let (problems, names_checked) = guarantee_problems(&guarantees);
    assert!(
        problems.is_empty(),
        "docs/guarantees.md names tests that do not exist (renamed or moved? update the \
         row):\n{}",
        problems.join("\n")
    );
    assert!(
        names_checked > 100,
        "only {names_checked} test names found: is the table read?"
    );
}

#[test]
fn the_guarantees_check_catches_a_renamed_test_and_a_moved_file() {
    let row =
        "| p | `tests/integration/tasks.rs` `another_users_task_is_not_found_and_never_changed` |";
    assert_eq!(guarantee_problems(row).0, Vec::<String>::new());
    let renamed = row.replace("never_changed", "never_changed_2");
    assert_eq!(guarantee_problems(&renamed).0.len(), 1);
    let moved = row.replace("tasks.rs", "tasks_moved.rs");
    assert!(!guarantee_problems(&moved).0.is_empty());
    // Globs need some function to match; a folder is searched recursively.
    let globs = "| p | `tests/integration/hostile/` (`hostile_*`), `tests/integration/queries/cursors.rs` `a_*_cursor_*` |";
    assert_eq!(guarantee_problems(globs).0, Vec::<String>::new());
    let missing = "| p | `tests/integration/hostile/` `nothing_starts_like_this_*` |";
    assert_eq!(guarantee_problems(missing).0.len(), 1);
}

/// The variable names of the table rows (`| \`NAME\` | ... |`) of a doc block.
fn table_variables(lines: impl Iterator<Item = String>) -> BTreeSet<String> {
    lines
        .filter_map(|l| {
            let cell = l.trim().strip_prefix("| `")?;
            let name = &cell[..cell.find('`')?];
            let is_var = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_var.then(|| name.to_string())
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_exactly_the_variables_from_env_reads() {
    // The table: the leading `//!` block of src/config/mod.rs.
    let config_docs = read("src/config/mod.rs");
    let documented = table_variables(
        config_docs
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").to_string()),
    );

    // The code: every variable-like string literal of src/config/env.rs outside its
    // tests (the names of `vars`, and any name read directly).
    let env = read("src/config/env.rs");
    let code = &env[..env.find("#[cfg(test)]").unwrap_or(env.len())];
    let read_in_code: BTreeSet<String> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.contains('_')
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect();
    assert!(read_in_code.contains("DATABASE_URL"), "{read_in_code:?}");
    assert_eq!(
        documented, read_in_code,
        "the table in src/config/mod.rs and the variables src/config/env.rs reads differ"
    );

    // Each constant of `vars` is read by from_lookup, not only declared.
    let vars_block = &code[code.find("pub mod vars").unwrap()..];
    let vars_block = &vars_block[..vars_block.find("\n}").unwrap()];
    for line in vars_block.lines() {
        if let Some(rest) = line.trim().strip_prefix("pub const ") {
            let constant = &rest[..rest.find(':').unwrap()];
            assert!(
                code.contains(&format!("vars::{constant})")),
                "vars::{constant} is declared but DbConfig::from_lookup does not read it"
            );
        }
    }
}

#[test]
fn the_configuration_variables_are_documented_once() {
    let mut files = vec![root().join("README.md")];
    for dir in ["src", "docs"] {
        let mut found = Vec::new();
        rust_files(&root().join(dir), &mut found);
        files.extend(found);
    }
    for entry in fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let the_table = root().join("src/config/mod.rs");
    for file in files.iter().filter(|f| **f != the_table) {
        let text = fs::read_to_string(file).unwrap();
        let rows = table_variables(text.lines().map(|l| {
            l.trim_start()
                .trim_start_matches("//!")
                .trim_start_matches("///")
                .to_string()
        }));
        let rows: Vec<_> = rows.iter().filter(|v| v.starts_with("DATABASE_")).collect();
        assert!(
            rows.is_empty(),
            "{} has a table of configuration variables ({rows:?}): the one table is in \
             src/config/mod.rs; link to it instead",
            file.display()
        );
    }
}

//! What the crate sends: the statements of one call, from diesel's instrumentation, and
//! the floor's SQL made from them: the very statement, each bind parameter replaced by
//! its pgbench variable.

use std::sync::{Arc, Mutex};

use diesel::connection::InstrumentationEvent;
use diesel::prelude::*;
use rand_pcg::Pcg64;

use todo_store::DbConfig;

use crate::ops::{call, BindVars, Conn, Op};
use crate::pgbench;
use crate::sample::Ctx;
use crate::BoxResult;

#[derive(Debug, Clone)]
enum Event {
    /// A statement: its SQL and its binds as diesel's debug output prints them.
    Query { sql: String, binds: String },
    /// A statement entered the connection's prepared statement cache.
    Cached,
}

type Recorder = Arc<Mutex<Vec<Event>>>;

fn record_events(conn: &mut PgConnection) -> Recorder {
    let recorder: Recorder = Arc::default();
    let sink = Arc::clone(&recorder);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let recorded = match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                let (sql, binds) = match text.rsplit_once(" -- binds: ") {
                    Some((sql, binds)) => (sql.to_owned(), binds.to_owned()),
                    None => (text, "[]".to_owned()),
                };
                Event::Query { sql, binds }
            }
            InstrumentationEvent::CacheQuery { .. } => Event::Cached,
            _ => return,
        };
        sink.lock().expect("recorder").push(recorded);
    });
    recorder
}

fn take_events(recorder: &Recorder) -> Vec<Event> {
    std::mem::take(&mut *recorder.lock().expect("recorder"))
}

/// What one call of an op sent, from a second call on a connection of its own (the first
/// one may also look up type OIDs).
#[derive(Debug, Clone)]
pub struct Capture {
    /// Every statement of the call.
    pub statements: Vec<(String, String)>,
    /// Whether diesel put the op's statement into its prepared-statement cache.
    pub prepared: bool,
    /// The pgbench script, or why there is none.
    pub floor_script: Result<String, String>,
    pub floor_sql: String,
}

/// Runs `op` twice on a fresh connection of its own and records what the second call
/// sent; the first call tells whether diesel cached the statement (and may also look up
/// type OIDs). The connection is a plain one, outside the pool: the recorder takes the
/// connection's instrumentation slot, which the pool's connections use for their own
/// bookkeeping.
pub fn capture(op: Op, ctx: &mut Ctx, config: &DbConfig, rng: &mut Pcg64) -> BoxResult<Capture> {
    let mut conn = PgConnection::establish(config.get_url())?;
    let recorder = record_events(&mut conn);
    call(op, ctx, Conn::Held(&mut conn), rng, false)?;
    let first = take_events(&recorder);
    let (_, vars) = call(op, ctx, Conn::Held(&mut conn), rng, true)?;
    let second = take_events(&recorder);
    finish_capture(op, &first, &second, &vars)
}

fn finish_capture(
    op: Op,
    first: &[Event],
    second: &[Event],
    vars: &BindVars,
) -> BoxResult<Capture> {
    let statements: Vec<(String, String)> = second
        .iter()
        .filter_map(|e| match e {
            Event::Query { sql, binds } => Some((sql.clone(), binds.clone())),
            Event::Cached => None,
        })
        .collect();
    let prepared = first.iter().any(|e| matches!(e, Event::Cached));
    let (main_sql, main_binds) = statements
        .iter()
        .find(|(sql, _)| !is_overhead(sql))
        .ok_or_else(|| format!("{}: no statement captured", op.label()))?;
    let floor_sql = mirror(main_sql, &split_debug_list(main_binds), vars);
    let floor_script = floor_sql
        .clone()
        .map(|sql| pgbench::script(&sql, op.floor_pick()));
    Ok(Capture {
        floor_sql: floor_sql.clone().unwrap_or_default(),
        statements,
        prepared,
        floor_script,
    })
}

/// Statements that are not the operation itself: the pool's check, transactions.
fn is_overhead(sql: &str) -> bool {
    let s = sql.trim().to_ascii_uppercase();
    s == "SELECT 1"
        || s.starts_with("BEGIN")
        || s.starts_with("COMMIT")
        || s.starts_with("ROLLBACK")
}

/// Splits diesel's debug list of binds (`[a, Some("x, y"), None]`) at its top-level commas.
fn split_debug_list(list: &str) -> Vec<String> {
    let list = list.trim();
    let inner = list.strip_prefix('[').unwrap_or(list);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    let mut items = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    let mut current = String::new();
    for c in inner.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_owned());
    }
    items
}

/// The crate's SQL with each `$n` replaced by the pgbench variable of its bind value
/// (`NULL` for a bound NULL: pgbench cannot bind one). A task's write mark
/// (`last_write = $n`) is computed by the crate from the patch, so no call binds it
/// as such: the floor writes a fresh UUIDv7 there, `:wid`, as the crate writes one.
fn mirror(sql: &str, binds: &[String], vars: &BindVars) -> Result<String, String> {
    let write_mark = sql.split_once("last_write = $").and_then(|(_, rest)| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok()
    });
    let tokens = binds
        .iter()
        .enumerate()
        .map(|(i, bind)| {
            if bind == "None" {
                return Ok("NULL".to_owned());
            }
            if write_mark == Some(i + 1) {
                return Ok(":wid".to_owned());
            }
            vars.iter()
                .find(|(debug, _)| debug == bind)
                .map(|(_, token)| token.clone())
                .ok_or_else(|| format!("no pgbench variable for the bind value {bind}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Comments first: an apostrophe in one would read as a quote below.
    let sql = one_line(sql);
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut quoted) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        } else if c == '$' && !quoted && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
            }
            let n: usize = chars[i + 1..j]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            let token = tokens
                .get(n.wrapping_sub(1))
                .ok_or_else(|| format!("${n} has no bind value"))?;
            out.push_str(token);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

/// `sql` on one line, as a pgbench script takes a statement: `--` comments (outside
/// quotes) dropped, line breaks made spaces. (The crate's long statements live in `.sql`
/// files, written over many lines with comments.)
fn one_line(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines() {
        let mut quoted = false;
        let mut end = line.len();
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\'' {
                quoted = !quoted;
            } else if !quoted && b == b'-' && bytes.get(i + 1) == Some(&b'-') {
                end = i;
                break;
            }
        }
        let code = line[..end].trim();
        if !code.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(code);
        }
    }
    out
}

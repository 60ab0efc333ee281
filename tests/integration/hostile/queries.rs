//! Hostile task queries: every builder, every page size type.

use std::cell::RefCell;

use todo_store::testing::TestDb;

use super::*;

/// A page size given as any integer type `TaskQuery::limit` takes.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Default,
    I64(i64),
    U64(u64),
    I128(i128),
    I32(i32),
}

#[derive(Debug, Clone)]
struct GenQuery {
    completed: Option<bool>,
    priorities: Vec<Priority>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
    overdue: bool,
    created_before: Option<DateTime<Utc>>,
    created_after: Option<DateTime<Utc>>,
    search: Option<String>,
    sort: Option<(TaskSort, Direction)>,
    limit: Limit,
    after: Option<String>,
}

impl GenQuery {
    /// The query, made with every builder this case asks for.
    fn build(&self) -> TaskQuery {
        let mut q = TaskQuery::new();
        if let Some(c) = self.completed {
            q = q.completed(c);
        }
        for p in &self.priorities {
            q = q.priority(*p);
        }
        if let Some(at) = self.due_before {
            q = q.due_before(at);
        }
        if let Some(at) = self.due_after {
            q = q.due_after(at);
        }
        if self.overdue {
            q = q.overdue();
        }
        if let Some(at) = self.created_before {
            q = q.created_before(at);
        }
        if let Some(at) = self.created_after {
            q = q.created_after(at);
        }
        if let Some(s) = &self.search {
            q = q.search(s);
        }
        if let Some((sort, dir)) = self.sort {
            q = q.sort(sort, dir);
        }
        q = match self.limit {
            Limit::Default => q,
            Limit::I64(n) => q.limit(n),
            Limit::U64(n) => q.limit(n),
            Limit::I128(n) => q.limit(n),
            Limit::I32(n) => q.limit(n),
        };
        if let Some(c) = &self.after {
            q = q.after(c);
        }
        q
    }
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        2 => Just(Limit::Default),
        3 => (1..=4i64).prop_map(Limit::I64),
        1 => prop::sample::select(vec![i64::MIN, -1, 0, 1, 500, 501, i64::MAX]).prop_map(Limit::I64),
        1 => any::<u64>().prop_map(Limit::U64),
        1 => any::<i128>().prop_map(Limit::I128),
        1 => any::<i32>().prop_map(Limit::I32),
    ]
}

fn gen_query() -> impl Strategy<Value = GenQuery> {
    (
        (
            prop::option::of(any::<bool>()),
            prop::collection::vec(priority(), 0..4),
            prop::option::of(extreme_date()),
            prop::option::of(extreme_date()),
            prop::bool::weighted(0.2),
            prop::option::of(extreme_date()),
            prop::option::of(extreme_date()),
        ),
        prop::option::of(prop_oneof![2 => hostile_text(), 1 => Just("alpha".to_owned())]),
        prop::option::of((sort(), direction())),
        limit(),
        prop::option::weighted(0.3, hostile_text()),
    )
        .prop_map(
            |(
                (
                    completed,
                    priorities,
                    due_before,
                    due_after,
                    overdue,
                    created_before,
                    created_after,
                ),
                search,
                sort,
                limit,
                after,
            )| GenQuery {
                completed,
                priorities,
                due_before,
                due_after,
                overdue,
                created_before,
                created_after,
                search,
                sort,
                limit,
                after,
            },
        )
}

#[test]
fn hostile_task_queries_are_ok_or_invalid_and_read_only() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    run(192, gen_query(), |g| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        list_pages(conn, fx.user.id, &g.build(), "TaskRepo::list")?;
        let stats = TaskRepo::stats(conn, fx.user.id);
        prop_assert!(stats.is_ok(), "{stats:?}");
        Ok(())
    });
}

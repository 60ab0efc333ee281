//! The library's basic use: the README's quickstart.
//!
//! `DATABASE_URL=postgres://... cargo run --example quickstart`
//! (`cargo run --example seed -- --keep-running` prints a URL to use).

use todo_store::{connect, DbConfig, NewTask, NewUser, Priority, TaskQuery, TaskRepo, UserRepo};

fn main() -> todo_store::Result<()> {
    // DATABASE_URL from the environment or .env; pending migrations run before connect returns.
    let pool = connect(&DbConfig::from_env()?)?;
    let mut conn = pool.get()?;

    let user = match UserRepo::find_by_email(&mut conn, "ada@example.com")? {
        Some(user) => user,
        None => UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada Lovelace"))?,
    };
    let task = TaskRepo::create(
        &mut conn,
        user.id,
        &NewTask::new("Write the report").priority(Priority::High),
    )?;
    TaskRepo::set_completed(&mut conn, user.id, task.id, true)?;

    // The newest tasks first, 20 per page.
    let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(20))?;
    for task in &page.items {
        let mark = if task.completed { "x" } else { " " };
        println!("[{mark}] {} ({})", task.title, task.priority);
    }
    Ok(())
}

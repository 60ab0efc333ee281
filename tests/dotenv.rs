//! `.env` is read, never written into the process environment (changing the
//! environment of a running multi-threaded process is a data race). One test per
//! process: it changes the working directory, and the file is read once per process.

use todo_store::DbConfig;

#[test]
fn from_env_reads_dotenv_without_changing_the_environment() {
    let dir = std::env::temp_dir().join(format!("todo-store-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "DATABASE_URL=postgres://app:FromDotenv@db.example/todo\nDATABASE_POOL_SIZE=3\n\
         DATABASE_POOL_SIZE=9\n",
    )
    .unwrap();
    assert!(
        std::env::var("DATABASE_URL").is_err(),
        "the test needs a clean environment"
    );
    std::env::set_current_dir(&dir).unwrap();
    let config = DbConfig::from_env().expect("DATABASE_URL from .env");
    assert_eq!(
        config.get_url(),
        "postgres://app:FromDotenv@db.example/todo"
    );
    assert_eq!(config.get_pool_size(), 3, "the first declaration wins");
    for name in ["DATABASE_URL", "DATABASE_POOL_SIZE"] {
        assert!(
            std::env::var(name).is_err(),
            "{name} was written into the environment"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Hostile new users and user patches.

use std::cell::RefCell;

use todo_store::testing::TestDb;
use todo_store::UserPatch;

use super::*;

#[derive(Debug, Clone)]
struct GenUser {
    email: String,
    name: String,
    verified: bool,
    image: Option<String>,
}

impl GenUser {
    fn new_user(&self) -> NewUser {
        NewUser {
            email: self.email.clone(),
            name: self.name.clone(),
            email_verified: self.verified,
            image: self.image.clone(),
            ..Default::default()
        }
    }
}

fn gen_user() -> impl Strategy<Value = GenUser> {
    (email(), text(1), any::<bool>(), prop::option::of(text(1))).prop_map(
        |(email, name, verified, image)| GenUser {
            email,
            name,
            verified,
            image,
        },
    )
}

#[test]
fn hostile_new_users_are_stored_exactly_or_rejected_without_a_trace() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    fixture(&mut conn.borrow_mut());
    let strategy = (
        gen_user(),
        (gen_user(), gen_user(), prop::bool::weighted(0.25)),
        hostile_text(),
        prop_oneof![3 => 1..=1000i64, 1 => any::<i64>()],
        prop_oneof![3 => 0..4i64, 1 => any::<i64>()],
    );
    run(
        128,
        strategy,
        |(a, (b, c, duplicate), lookup, limit, offset)| {
            let mut guard = conn.borrow_mut();
            let conn: &mut PgConnection = &mut guard;

            let before = digest(conn);
            let created = UserRepo::create(conn, &a.new_user());
            check(conn, &before, "UserRepo::create", &created)?;
            if let Ok(user) = &created {
                prop_assert_eq!(&user.email, a.email.trim());
                prop_assert_eq!(&user.name, a.name.trim());
                prop_assert_eq!(&user.image, &a.image);
                prop_assert_eq!(&UserRepo::get(conn, user.id).unwrap(), user);
                let found = UserRepo::find_by_email(conn, &a.email).unwrap();
                prop_assert_eq!(found.as_ref().map(|u| u.id), Some(user.id));
            }

            // A batch: all or nothing (with `a` again, a conflict with it or with its row).
            let mut news = vec![b.new_user(), c.new_user()];
            if duplicate {
                news.push(a.new_user());
            }
            let before = digest(conn);
            let count = UserRepo::count(conn).unwrap();
            let batch = UserRepo::create_many(conn, &news);
            check(conn, &before, "UserRepo::create_many", &batch)?;
            if let Ok(users) = &batch {
                prop_assert_eq!(users.len(), news.len());
                prop_assert_eq!(UserRepo::count(conn).unwrap(), count + news.len() as i64);
                for user in users {
                    prop_assert_eq!(&UserRepo::get(conn, user.id).unwrap(), user);
                }
            }

            // Lookups and listing with anything.
            let before = digest(conn);
            let found = UserRepo::find_by_email(conn, &lookup);
            prop_assert!(
                found.is_ok(),
                "find_by_email({}): {:?}",
                short(&lookup),
                found
            );
            let listed = UserRepo::list(conn, limit, offset);
            check(conn, &before, "UserRepo::list", &listed)?;
            prop_assert_eq!(digest(conn), before, "a read changed the database");
            Ok(())
        },
    );
}

#[derive(Debug, Clone)]
struct GenUserPatch {
    email: Option<String>,
    name: Option<String>,
    verified: Option<bool>,
    image: Option<Option<String>>,
    /// 0 and 1: the user; 2: a random id; 3: the nil id.
    target: u8,
    delete: bool,
}

fn gen_user_patch() -> impl Strategy<Value = GenUserPatch> {
    (
        prop::option::of(email()),
        prop::option::of(text(1)),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::option::of(text(1))),
        0..4u8,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(email, name, verified, image, target, delete)| GenUserPatch {
                email,
                name,
                verified,
                image,
                target,
                delete,
            },
        )
}

#[test]
fn hostile_user_patches_apply_exactly_or_change_nothing() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    let user = fx.user.id;
    run(128, gen_user_patch(), |g| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let target = match g.target {
            0 | 1 => user,
            2 => Uuid::now_v7().into(),
            _ => Uuid::nil().into(),
        };
        let patch = UserPatch {
            email: g.email.clone(),
            name: g.name.clone(),
            email_verified: g.verified,
            image: g.image.clone(),
        };
        let before = digest(conn);
        let old = UserRepo::get(conn, target).ok();
        let updated = UserRepo::update(conn, target, &patch);
        check(conn, &before, "UserRepo::update", &updated)?;
        if let (Ok(new), Some(old)) = (&updated, &old) {
            let email = g.email.as_deref().map_or(old.email.as_str(), str::trim);
            prop_assert_eq!(&new.email, email);
            let name = g.name.as_deref().map_or(old.name.as_str(), str::trim);
            prop_assert_eq!(&new.name, name);
            prop_assert_eq!(&new.image, g.image.as_ref().unwrap_or(&old.image));
            prop_assert_eq!(&UserRepo::get(conn, target).unwrap(), new);
        }
        prop_assert!(old.is_some() || updated.is_err(), "updated a missing user");
        if g.delete && target != user {
            let before = digest(conn);
            let deleted = UserRepo::delete(conn, target);
            prop_assert!(
                matches!(deleted, Err(Error::NotFound { .. })),
                "{deleted:?}"
            );
            check(conn, &before, "UserRepo::delete", &deleted)?;
        }
        Ok(())
    });
}

//! The store's contract, run against a real SQLite file and, when `KILN_TEST_DATABASE` names a
//! PostgreSQL database (`scripts/dev-cluster.sh postgres up`), against PostgreSQL in a schema of
//! its own. `KILN_REQUIRE_DATABASE=postgres` makes the PostgreSQL half fail rather than skip when
//! no database is named.

use std::sync::Arc;

use kiln_api::{Binding, Model, Operation, Policy, Version};
use kiln_store::{Contains, Order, Scan, Store, StoreError};

static OWN: Order = Order::OWN;

/// A scan in the list's own order.
fn scan<'a>(after: Option<&'a str>, contains: &'a Contains, limit: usize) -> Scan<'a> {
    Scan {
        after,
        contains,
        order: &OWN,
        limit,
    }
}

/// Where a test's database lives, as `--database` takes it.
struct Place {
    database: String,
    _dir: tempfile::TempDir,
}

impl Place {
    fn sqlite() -> Place {
        let dir = tempfile::tempdir().unwrap();
        Place {
            database: dir.path().join("kiln.db").display().to_string(),
            _dir: dir,
        }
    }

    /// A fresh schema named after the test, or `None` without a PostgreSQL to use.
    fn postgres(test: &str) -> Option<Place> {
        let Ok(url) = std::env::var("KILN_TEST_DATABASE") else {
            assert!(
                std::env::var("KILN_REQUIRE_DATABASE").as_deref() != Ok("postgres"),
                "KILN_REQUIRE_DATABASE=postgres, but KILN_TEST_DATABASE is not set"
            );
            eprintln!("{test}: no KILN_TEST_DATABASE, PostgreSQL not tested");
            return None;
        };
        let schema = format!("store_{test}_{}", std::process::id());
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
        Some(Place {
            database: kiln_store::postgres::in_schema(&url, &schema).unwrap(),
            _dir: tempfile::tempdir().unwrap(),
        })
    }

    fn open(&self) -> Arc<dyn Store> {
        kiln_store::open(&self.database).unwrap()
    }
}

/// Runs a contract test on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::Place::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(place) = super::Place::postgres(stringify!($name)) {
                    super::$name(&place);
                }
            })*
        }
    };
}

on_both!(
    models_versions_and_defaults_survive_reopening,
    jobs_are_listed_in_order_and_active_ones_found,
    tokens_policies_and_audit_entries_persist,
    studies_trials_and_their_operations_persist,
    a_schema_newer_than_the_binary_is_refused,
    jobs_are_scanned_in_order_narrowed_by_their_text,
    operations_are_scanned_in_order_narrowed_by_their_text,
    jobs_are_sorted_and_paged_in_the_database_as_the_order_compares,
    of_servers_racing_to_take_over_a_job_exactly_one_wins,
    leases_are_renewed_and_ended,
    the_shared_quota_admits_in_order_within_it,
);

/// Ends job `id` of project `p` as SUCCEEDED.
fn succeed(store: &Arc<dyn Store>, id: &str) {
    let written = store
        .update_job_with("p", id, &mut |job| {
            job.state = kiln_api::JobState::Succeeded;
            true
        })
        .unwrap();
    assert!(written.is_some_and(|job| job.state == kiln_api::JobState::Succeeded));
}

fn model(name: &str) -> Model {
    Model {
        name: format!("projects/p/models/{name}"),
        ..Model::default()
    }
}

fn models_versions_and_defaults_survive_reopening(place: &Place) {
    {
        let store = place.open();
        let owner = |member: &str| Policy {
            etag: member.into(),
            bindings: vec![Binding {
                role: "roles/ml.modelOwner".into(),
                members: vec![member.into()],
                condition: None,
            }],
            ..Policy::default()
        };
        store
            .create_model("p", "census", &model("census"), &owner("user:a"))
            .unwrap();
        assert!(matches!(
            store.create_model("p", "census", &model("census"), &owner("user:b")),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(
            store.get_policy("projects/p/models/census").unwrap(),
            Some(owner("user:a")),
            "the model's policy is its creator's, and a refused create writes none"
        );
        let first = store
            .create_version("p", "census", "v1", &Version::default())
            .unwrap();
        let second = store
            .create_version("p", "census", "v2", &Version::default())
            .unwrap();
        assert!(
            first.is_default && !second.is_default,
            "the first version becomes the default"
        );
        assert!(
            store
                .set_default_version("p", "census", "v2", &mut |_| false)
                .unwrap()
                .is_none(),
            "a refused default changes nothing"
        );
        assert!(store.list_versions("p", "census").unwrap()[0].is_default);
        store
            .set_default_version("p", "census", "v2", &mut |version| !version.is_default)
            .unwrap()
            .unwrap();
        store
            .create_operation(
                "p",
                "op1",
                &Operation {
                    name: "projects/p/operations/op1".into(),
                    ..Operation::default()
                },
                "server-a",
                &Policy::default(),
            )
            .unwrap();
    }
    let store = place.open();
    let versions = store.list_versions("p", "census").unwrap();
    let defaults: Vec<bool> = versions.iter().map(|version| version.is_default).collect();
    assert_eq!(defaults, vec![false, true]);
    store
        .create_model("p", "bare", &model("bare"), &Policy::default())
        .unwrap();
    let listed: Vec<(String, Option<bool>)> = store
        .scan_models("p", &scan(None, &Contains::default(), usize::MAX))
        .unwrap()
        .into_iter()
        .map(|model| {
            let default = model.default_version.map(|version| version.is_default);
            (model.name, default)
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("projects/p/models/bare".to_string(), None),
            ("projects/p/models/census".to_string(), Some(true)),
        ],
        "each model with its default version, if any"
    );
    let none = kiln_store::Contains::default();
    let after_bare = store
        .scan_models("p", &scan(Some("bare"), &none, 10))
        .unwrap();
    assert_eq!(after_bare.len(), 1);
    assert_eq!(after_bare[0].name, "projects/p/models/census");
    let census = store.get_model("p", "census").unwrap().unwrap();
    assert!(
        census
            .default_version
            .is_some_and(|version| version.is_default),
        "a model is read with its default version"
    );
    assert!(
        store
            .get_model("p", "bare")
            .unwrap()
            .unwrap()
            .default_version
            .is_none()
    );
    assert_eq!(
        store.scan_models("p", &scan(None, &none, 1)).unwrap().len(),
        1,
        "at most the limit"
    );
    let census_text = kiln_store::Contains {
        all_of: vec![vec![vec!["models/census".to_string()]]],
    };
    let narrowed = store
        .scan_models("p", &scan(None, &census_text, 10))
        .unwrap();
    assert_eq!(narrowed.len(), 1, "narrowed by the stored text");
    assert_eq!(
        store
            .scan_versions("p", "census", &scan(Some("v1"), &none, 10))
            .unwrap()
            .len(),
        1,
        "the versions after v1"
    );
    assert!(store.default_version("p", "census").unwrap().is_some());
    assert!(store.default_version("p", "bare").unwrap().is_none());
    assert_eq!(store.unfinished_operations().unwrap().len(), 1);
    assert!(
        store.get_model("other", "census").unwrap().is_none(),
        "projects are separate"
    );
    assert!(matches!(
        store.delete_version_with("p", "census", "v9", &mut |_| true),
        Err(StoreError::NotFound(_))
    ));
    let counted = store
        .delete_version_with("p", "census", "v1", &mut |(_, count)| {
            assert_eq!(*count, 2);
            false
        })
        .unwrap();
    assert!(counted.is_none() && store.get_version("p", "census", "v1").unwrap().is_some());
    let patched = store
        .update_version_with("p", "census", "v1", &mut |version| {
            version.description = "patched".into();
            version.is_default = true;
            true
        })
        .unwrap()
        .unwrap();
    assert!(
        patched.description == "patched" && !patched.is_default,
        "a change keeps the stored default flag"
    );
    let patched = store
        .update_model_with("p", "census", &mut |model| {
            model.description = "m".into();
            true
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        store.get_model("p", "census").unwrap().unwrap().description,
        patched.description
    );
    assert!(
        store.delete_model("p", "census").is_err(),
        "a model with versions cannot be deleted"
    );
}

fn jobs_are_listed_in_order_and_active_ones_found(place: &Place) {
    use kiln_api::{Job, JobState};
    let store = place.open();
    for id in ["b_job", "a_job"] {
        store
            .create_job(
                "p",
                &Job {
                    job_id: id.into(),
                    state: JobState::Queued,
                    ..Job::default()
                },
                "server-a",
                &Policy::default(),
            )
            .unwrap();
    }
    assert!(matches!(
        store.create_job(
            "p",
            &Job {
                job_id: "a_job".into(),
                ..Job::default()
            },
            "server-b",
            &Policy::default(),
        ),
        Err(StoreError::AlreadyExists(_))
    ));
    let ids: Vec<String> = store
        .scan_jobs("p", &scan(None, &Contains::default(), usize::MAX))
        .unwrap()
        .into_iter()
        .map(|job| job.job_id)
        .collect();
    assert_eq!(ids, ["b_job", "a_job"], "oldest first");
    succeed(&store, "b_job");
    assert!(
        store
            .update_job_with("p", "a_job", &mut |_| false)
            .unwrap()
            .is_none(),
        "a declined change writes nothing"
    );
    assert!(matches!(
        store.update_job_with("p", "no_job", &mut |_| true),
        Err(StoreError::NotFound(_))
    ));
    let active: Vec<String> = store
        .active_jobs()
        .unwrap()
        .into_iter()
        .map(|owned| format!("{} {} {}", owned.id, owned.value.job_id, owned.owner))
        .collect();
    assert_eq!(active, ["a_job a_job server-a"]);
    let ids = ["41".to_string(), "slurm:1234.0".to_string()];
    store.set_job_processes("p", "a_job", &ids).unwrap();
    assert_eq!(store.job_processes("p", "a_job").unwrap(), ids);
}

fn of_servers_racing_to_take_over_a_job_exactly_one_wins(place: &Place) {
    use kiln_api::{Job, JobState, Operation};
    let store = place.open();
    let job = Job {
        job_id: "orphan".into(),
        state: JobState::Running,
        ..Job::default()
    };
    store
        .create_job("p", &job, "dead", &Policy::default())
        .unwrap();
    store
        .create_operation("p", "op", &Operation::default(), "dead", &Policy::default())
        .unwrap();
    let racers: Vec<std::thread::JoinHandle<(bool, bool)>> = (0..4)
        .map(|racer| {
            let store = place.open();
            std::thread::spawn(move || {
                let me = format!("racer-{racer}");
                (
                    store.claim_job("p", "orphan", "dead", &me).unwrap(),
                    store.claim_operation("p", "op", "dead", &me).unwrap(),
                )
            })
        })
        .collect();
    let won: Vec<(bool, bool)> = racers
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect();
    assert_eq!(won.iter().filter(|(job, _)| *job).count(), 1, "{won:?}");
    assert_eq!(won.iter().filter(|(_, op)| *op).count(), 1, "{won:?}");
    let owner = &store.active_jobs().unwrap()[0].owner;
    assert!(owner.starts_with("racer-"), "{owner}");
    assert!(
        !store.claim_job("p", "orphan", "dead", "late").unwrap(),
        "a job already taken over is not taken again from its old owner"
    );
    succeed(&store, &job.job_id);
    assert!(
        !store.claim_job("p", "orphan", owner, "late").unwrap(),
        "an ended job is nobody's to take"
    );
}

fn the_shared_quota_admits_in_order_within_it(place: &Place) {
    use kiln_api::{Job, JobState};
    let store = place.open();
    let job = |id: &str| Job {
        job_id: id.into(),
        state: JobState::Queued,
        ..Job::default()
    };
    for (id, units) in [("a", 600_000), ("b", 600_000), ("c", 300_000)] {
        store
            .create_job("p", &job(id), "s", &Policy::default())
            .unwrap();
        store.set_job_units("p", id, units, false).unwrap();
    }
    let admit = |id: &str| store.admit_job("p", id, 1_000_000).unwrap();
    assert!(!admit("c"), "c fits but waits behind a and b");
    assert!(admit("a"));
    assert!(admit("a"), "an admitted job stays admitted");
    assert!(!admit("b"), "a and b together exceed the quota");
    assert!(!admit("c"), "c still waits behind b");
    succeed(&store, "a");
    assert!(
        admit("b") && admit("c"),
        "a's units are free once it is done"
    );
    store
        .create_job("p", &job("running"), "s", &Policy::default())
        .unwrap();
    store.set_job_units("p", "running", 200_000, true).unwrap();
    store
        .create_job("p", &job("late"), "s", &Policy::default())
        .unwrap();
    store.set_job_units("p", "late", 100_000, false).unwrap();
    assert!(
        !admit("late"),
        "a running job taken over holds its units: 0.6 + 0.3 + 0.2 leaves no room"
    );
    assert!(!store.admit_job("p", "absent", 1_000_000).unwrap());
}

fn leases_are_renewed_and_ended(place: &Place) {
    let store = place.open();
    store.renew_lease("a", 1_000).unwrap();
    store.renew_lease("b", 2_000).unwrap();
    store.renew_lease("a", 3_000).unwrap();
    let mut leases = store.leases().unwrap();
    leases.sort();
    assert_eq!(leases, [("a".to_string(), 3_000), ("b".to_string(), 2_000)]);
    store.end_lease("a").unwrap();
    store.renew_lease("c", 100_000_000_000).unwrap();
    let mut leases = store.leases().unwrap();
    leases.sort();
    assert_eq!(
        leases,
        [("c".to_string(), 100_000_000_000)],
        "an ended lease is gone, and those that ended a day before a renewal are forgotten"
    );
}

fn tokens_policies_and_audit_entries_persist(place: &Place) {
    use kiln_api::{AuditEntry, Token};
    {
        let store = place.open();
        let token = Token {
            name: "tokens/abc".into(),
            service_account: "ci".into(),
            ..Token::default()
        };
        store.create_token("abc", "hash", &token).unwrap();
        assert!(matches!(
            store.create_token("abc", "other", &token),
            Err(StoreError::AlreadyExists(_))
        ));
        let revoked = Token {
            revoke_time: "2026-01-01T00:00:00Z".into(),
            ..token
        };
        store.update_token("abc", &revoked).unwrap();
        assert!(matches!(
            store.update_token("nope", &revoked),
            Err(StoreError::NotFound(_))
        ));

        let first = Policy {
            etag: "e1".into(),
            ..Policy::default()
        };
        store.set_policy("projects/p", &first, Some("")).unwrap();
        let stale = Policy {
            etag: "e2".into(),
            ..Policy::default()
        };
        assert!(matches!(
            store.set_policy("projects/p", &stale, Some("")),
            Err(StoreError::Conflict(_))
        ));
        store.set_policy("projects/p", &stale, Some("e1")).unwrap();

        for (project, method) in [("p", "a"), ("q", "b"), ("p", "c")] {
            let entry = AuditEntry {
                method: method.into(),
                ..AuditEntry::default()
            };
            store.append_audit(project, &entry).unwrap();
        }
    }
    let store = place.open();
    let (token, hash) = store.get_token("abc").unwrap().unwrap();
    assert_eq!(
        (token.revoke_time.as_str(), hash.as_str()),
        ("2026-01-01T00:00:00Z", "hash")
    );
    let tokens = |after| {
        store
            .scan_tokens(&scan(after, &Contains::default(), 10))
            .unwrap()
            .len()
    };
    assert_eq!(tokens(None), 1);
    assert_eq!(tokens(Some("abc")), 0, "none after the only one");
    assert_eq!(store.get_policy("projects/p").unwrap().unwrap().etag, "e2");
    assert!(store.get_policy("projects/q").unwrap().is_none());
    let methods = |project, after| -> Vec<String> {
        store
            .scan_audit(project, &scan(after, &Contains::default(), 10))
            .unwrap()
            .into_iter()
            .map(|entry| format!("{}{}", entry.id, entry.method))
            .collect()
    };
    assert_eq!(
        methods(Some("p"), None),
        ["3c", "1a"],
        "newest first, one project"
    );
    assert_eq!(methods(None, None), ["3c", "2b", "1a"]);
    assert_eq!(methods(None, Some("3")), ["2b", "1a"], "after entry 3");
    assert_eq!(methods(Some("p"), Some("3")), ["1a"]);
}

fn studies_trials_and_their_operations_persist(place: &Place) {
    use kiln_api::study::{
        CheckTrialEarlyStoppingStateResponse, Study, StudyOperation, StudyOperationResponse, Trial,
    };
    let name = "projects/p/locations/us-central1/studies/s";
    {
        let store = place.open();
        let study = Study {
            name: name.into(),
            ..Study::default()
        };
        store.create_study("p", &study).unwrap();
        assert!(matches!(
            store.create_study("p", &study),
            Err(StoreError::AlreadyExists(_))
        ));
        let numbered = |id: i64| {
            (
                id,
                Trial {
                    name: format!("{name}/trials/{id}"),
                    ..Trial::default()
                },
            )
        };
        store.insert_trials("p", name, &[numbered(2)]).unwrap();
        store
            .insert_trials("p", name, &[numbered(1), numbered(3)])
            .unwrap();
        assert!(matches!(
            store.insert_trials("p", name, &[numbered(4), numbered(3)]),
            Err(StoreError::AlreadyExists(_))
        ));
        let declined = store.update_trial("p", name, 2, &mut |_| false).unwrap();
        assert!(declined.is_none());
        let replaced = store
            .update_trial("p", name, 2, &mut |trial| {
                trial.name = "replaced".into();
                true
            })
            .unwrap();
        assert_eq!(replaced.unwrap().name, "replaced");
        assert!(matches!(
            store.update_trial("p", name, 9, &mut |_| true),
            Err(StoreError::NotFound(_))
        ));
        store.delete_trial("p", name, 3).unwrap();
        assert!(matches!(
            store.delete_trial("p", name, 3),
            Err(StoreError::NotFound(_))
        ));
        let operation = StudyOperation {
            name: "projects/p/locations/us-central1/operations/o".into(),
            done: false,
            response: StudyOperationResponse::EarlyStopping(
                CheckTrialEarlyStoppingStateResponse::default(),
            ),
        };
        store.put_location_operation("p", &operation).unwrap();
        let finished = StudyOperation {
            done: true,
            ..operation
        };
        store.put_location_operation("p", &finished).unwrap();
    }
    let store = place.open();
    let trials: Vec<(i64, String)> = store
        .list_trials("p", name)
        .unwrap()
        .into_iter()
        .map(|(id, trial)| (id, trial.name))
        .collect();
    assert_eq!(
        trials,
        [(1, format!("{name}/trials/1")), (2, "replaced".into())],
        "by id, the second put replaced the first"
    );
    let operation = store
        .get_location_operation("p", "projects/p/locations/us-central1/operations/o")
        .unwrap()
        .unwrap();
    assert!(operation.done);
    assert_eq!(store.list_studies("p").unwrap().len(), 1);
    assert!(store.list_studies("q").unwrap().is_empty());
    store.delete_study("p", name).unwrap();
    assert!(
        store.list_trials("p", name).unwrap().is_empty(),
        "trials go with their study"
    );
    assert!(matches!(
        store.delete_study("p", name),
        Err(StoreError::NotFound(_))
    ));
}

/// A database another Kiln migrated further is refused with both versions named, and left as it
/// was.
fn a_schema_newer_than_the_binary_is_refused(place: &Place) {
    drop(place.open());
    let future = kiln_store::migrations::latest() + 1;
    let record = format!(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES ({future}, 'from_the_future', '2030-01-01T00:00:00Z', '0')"
    );
    match place.database.starts_with("postgres") {
        true => ::postgres::Client::connect(&place.database, ::postgres::NoTls)
            .unwrap()
            .batch_execute(&record)
            .unwrap(),
        false => rusqlite::Connection::open(&place.database)
            .unwrap()
            .execute_batch(&record)
            .unwrap(),
    }
    let refused = kiln_store::open(&place.database).err().expect("refused");
    assert!(
        matches!(refused, StoreError::NewerSchema { database, binary }
            if database == future && binary == future - 1),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("newer than this Kiln's"),
        "{refused}"
    );
}

/// A database made before refinery kept the schema's history (it counted migrations in
/// `PRAGMA user_version`) is taken as it is: its migrations are not run again (they would fail on
/// tables that exist), later ones run, its data stays.
#[test]
fn a_sqlite_database_counted_by_user_version_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        for script in [
            include_str!("../migrations/sqlite/V1__models_versions_operations.sql"),
            include_str!("../migrations/sqlite/V2__jobs.sql"),
            include_str!("../migrations/sqlite/V3__access_control.sql"),
            include_str!("../migrations/sqlite/V4__studies.sql"),
            include_str!("../migrations/sqlite/V5__location_operations.sql"),
        ] {
            connection.execute_batch(script).unwrap();
        }
        connection
            .execute_batch(
                "PRAGMA user_version = 5;
                 INSERT INTO models (project, name, body) VALUES ('p', 'old', '{\"name\": \"old\"}');",
            )
            .unwrap();
    }
    let store = kiln_store::SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        kiln_store::migrations::latest(),
        "the counted five are recorded, the later ones run"
    );
    assert_eq!(store.get_model("p", "old").unwrap().unwrap().name, "old");
    store
        .create_model("p", "new", &model("new"), &Policy::default())
        .unwrap();
}

/// A PostgreSQL that does not answer is `Unavailable`, naming where it was looked for and never
/// the password.
#[test]
fn an_unreachable_postgres_is_unavailable() {
    let refused = kiln_store::open("postgres://kiln:hunter2@127.0.0.1:1/kiln")
        .err()
        .expect("nothing listens on port 1");
    let message = refused.to_string();
    assert!(matches!(refused, StoreError::Unavailable(_)), "{message}");
    assert!(message.contains("127.0.0.1:1/kiln"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

fn jobs_are_scanned_in_order_narrowed_by_their_text(place: &Place) {
    use kiln_api::{Job, JobState};
    let store = place.open();
    for (index, state) in [
        JobState::Failed,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Queued,
        JobState::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let job = Job {
            job_id: format!("job_{index}_100%"),
            state,
            ..Job::default()
        };
        store
            .create_job("p", &job, "server-a", &Policy::default())
            .unwrap();
    }
    let ids = |after: Option<&str>, contains: &Contains, limit: usize| -> Vec<String> {
        store
            .scan_jobs("p", &scan(after, contains, limit))
            .unwrap()
            .into_iter()
            .map(|job| job.job_id)
            .collect()
    };
    let every = Contains::default();
    assert_eq!(ids(None, &every, 2), ["job_0_100%", "job_1_100%"]);
    assert_eq!(
        ids(Some("job_1_100%"), &every, 10),
        ["job_2_100%", "job_3_100%", "job_4_100%"],
        "after a job, oldest first"
    );
    let failed = Contains {
        all_of: vec![vec![vec!["\"state\":".into(), "FAILED".into()]]],
    };
    assert_eq!(
        ids(None, &failed, 10),
        ["job_0_100%", "job_2_100%", "job_4_100%"]
    );
    assert_eq!(ids(Some("job_0_100%"), &failed, 1), ["job_2_100%"]);
    let failed_or_queued = Contains {
        all_of: vec![vec![vec!["FAILED".into()], vec!["QUEUED".into()]]],
    };
    assert_eq!(
        ids(Some("job_2_100%"), &failed_or_queued, 10),
        ["job_3_100%", "job_4_100%"]
    );
    let text = |strings: &[&str]| Contains {
        all_of: vec![vec![strings.iter().map(|s| s.to_string()).collect()]],
    };
    assert_eq!(ids(None, &text(&["2_100%"]), 10), ["job_2_100%"]);
    assert!(
        ids(None, &text(&["1%"]), 10).is_empty() && ids(None, &text(&["j_b"]), 10).is_empty(),
        "% and _ are matched as themselves, not as wildcards"
    );
    let nothing = Contains {
        all_of: vec![vec![vec!["SUCCEEDED".into(), "QUEUED".into()]]],
    };
    assert!(ids(None, &nothing, 10).is_empty());
    assert!(
        store
            .scan_jobs("q", &scan(None, &every, 10))
            .unwrap()
            .is_empty()
    );
}

fn operations_are_scanned_in_order_narrowed_by_their_text(place: &Place) {
    let store = place.open();
    for (id, done) in [("op_b", true), ("op_a", false), ("op_c", true)] {
        let operation = Operation {
            name: format!("projects/p/operations/{id}"),
            done,
            ..Operation::default()
        };
        store
            .create_operation("p", id, &operation, "server-a", &Policy::default())
            .unwrap();
    }
    let names = |after: Option<&str>, contains: &Contains| -> Vec<String> {
        store
            .scan_operations("p", &scan(after, contains, 10))
            .unwrap()
            .into_iter()
            .map(|operation| operation.name.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(None, &Contains::default()),
        ["op_b", "op_a", "op_c"],
        "oldest first"
    );
    assert_eq!(names(Some("op_b"), &Contains::default()), ["op_a", "op_c"]);
    let done = Contains {
        all_of: vec![vec![vec!["\"done\":true".into()]]],
    };
    assert_eq!(names(None, &done), ["op_b", "op_c"]);
}

fn jobs_are_sorted_and_paged_in_the_database_as_the_order_compares(place: &Place) {
    use kiln_api::{Job, TrainingOutput};
    use kiln_store::SortKey;
    let store = place.open();
    let labels = ["10", "9", "-3", "b", "B", "", "x y", "\u{e9}", "007"];
    for index in 0..14_usize {
        let mut job = Job {
            job_id: format!("j{index:02}"),
            create_time: format!("2026-01-{:02}T00:00:00Z", 12 - index % 5),
            ..Job::default()
        };
        if index % 4 != 0 {
            job.labels
                .insert("x".into(), labels[index % labels.len()].into());
        }
        if index % 3 != 0 {
            job.training_output = Some(TrainingOutput {
                consumed_m_l_units: (index % 4) as f64 * 0.5,
                completed_trial_count: (index * 7 % 11) as i64,
                is_hyperparameter_tuning_job: index % 2 == 0,
                ..TrainingOutput::default()
            });
        }
        store
            .create_job("p", &job, "server-a", &Policy::default())
            .unwrap();
    }
    let every = Contains::default();
    let stored = store
        .scan_jobs("p", &scan(None, &every, usize::MAX))
        .unwrap();
    let ids = |jobs: &[Job]| -> Vec<String> { jobs.iter().map(|job| job.job_id.clone()).collect() };
    let tuning = Contains {
        all_of: vec![vec![vec!["trainingOutput".into()]]],
    };
    for (text, contains) in [
        ("labels.x", &every),
        ("labels.x desc", &every),
        ("trainingOutput.consumedMLUnits desc, createTime", &every),
        ("trainingOutput.completedTrialCount", &every),
        (
            "trainingOutput.isHyperparameterTuningJob, labels.x desc",
            &every,
        ),
        ("createTime desc, jobId desc", &every),
        ("trainingOutput", &every),
        ("labels.x, trainingOutput.completedTrialCount desc", &tuning),
    ] {
        let keys = text
            .split(',')
            .map(|clause| {
                let words: Vec<&str> = clause.split_whitespace().collect();
                SortKey::new(words[0], words.get(1) == Some(&"desc")).unwrap()
            })
            .collect();
        let order = Order::new(keys);
        let mut expected: Vec<Job> = stored
            .iter()
            .filter(|job| contains.all_of.is_empty() || job.training_output.is_some())
            .cloned()
            .collect();
        expected.sort_by(|a, b| {
            order.compare(
                &serde_json::to_value(a).unwrap(),
                &serde_json::to_value(b).unwrap(),
            )
        });
        let mut paged: Vec<Job> = Vec::new();
        loop {
            let after = paged.last().map(|job| job.job_id.clone());
            let page = store
                .scan_jobs(
                    "p",
                    &Scan {
                        after: after.as_deref(),
                        contains,
                        order: &order,
                        limit: 3,
                    },
                )
                .unwrap();
            let full = page.len() == 3;
            paged.extend(page);
            if !full {
                break;
            }
        }
        assert_eq!(ids(&paged), ids(&expected), "orderBy {text}");
    }
}

//! The store's contract, run against the SQLite backend on a real database file.

use kiln_api::{Model, Operation, Version};
use kiln_store::{SqliteStore, Store, StoreError};

fn model(name: &str) -> Model {
    Model {
        name: format!("projects/p/models/{name}"),
        ..Model::default()
    }
}

#[test]
fn models_versions_and_defaults_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_model("p", "census", &model("census")).unwrap();
        assert!(matches!(
            store.create_model("p", "census", &model("census")),
            Err(StoreError::AlreadyExists(_))
        ));
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
        store.set_default_version("p", "census", "v2").unwrap();
        store
            .create_operation(
                "p",
                "op1",
                &Operation {
                    name: "projects/p/operations/op1".into(),
                    ..Operation::default()
                },
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        kiln_store::migrations::MIGRATIONS.len()
    );
    let versions = store.list_versions("p", "census").unwrap();
    let defaults: Vec<bool> = versions.iter().map(|version| version.is_default).collect();
    assert_eq!(defaults, vec![false, true]);
    assert_eq!(store.unfinished_operations().unwrap().len(), 1);
    assert!(
        store.get_model("other", "census").unwrap().is_none(),
        "projects are separate"
    );
    assert!(matches!(
        store.delete_version("p", "census", "v9"),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.delete_model("p", "census").is_err(),
        "a model with versions cannot be deleted"
    );
}

#[test]
fn jobs_are_listed_in_order_and_active_ones_found() {
    use kiln_api::{Job, JobState};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kiln.db")).unwrap();
    for id in ["b_job", "a_job"] {
        store
            .create_job(
                "p",
                &Job {
                    job_id: id.into(),
                    state: JobState::Queued,
                    ..Job::default()
                },
            )
            .unwrap();
    }
    assert!(matches!(
        store.create_job(
            "p",
            &Job {
                job_id: "a_job".into(),
                ..Job::default()
            }
        ),
        Err(StoreError::AlreadyExists(_))
    ));
    let ids: Vec<String> = store
        .list_jobs("p")
        .unwrap()
        .into_iter()
        .map(|job| job.job_id)
        .collect();
    assert_eq!(ids, ["b_job", "a_job"], "oldest first");
    store
        .update_job(
            "p",
            &Job {
                job_id: "b_job".into(),
                state: JobState::Succeeded,
                ..Job::default()
            },
        )
        .unwrap();
    let active: Vec<String> = store
        .active_jobs()
        .unwrap()
        .into_iter()
        .map(|(_, job)| job.job_id)
        .collect();
    assert_eq!(active, ["a_job"]);
    let ids = ["41".to_string(), "slurm:1234.0".to_string()];
    store.set_job_processes("p", "a_job", &ids).unwrap();
    assert_eq!(store.job_processes("p", "a_job").unwrap(), ids);
}

#[test]
fn tokens_policies_and_audit_entries_persist() {
    use kiln_api::{AuditEntry, Policy, Token};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    {
        let store = SqliteStore::open(&path).unwrap();
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
    let store = SqliteStore::open(&path).unwrap();
    let (token, hash) = store.get_token("abc").unwrap().unwrap();
    assert_eq!(
        (token.revoke_time.as_str(), hash.as_str()),
        ("2026-01-01T00:00:00Z", "hash")
    );
    assert_eq!(store.list_tokens().unwrap().len(), 1);
    assert_eq!(store.get_policy("projects/p").unwrap().unwrap().etag, "e2");
    assert!(store.get_policy("projects/q").unwrap().is_none());
    let methods = |project| -> Vec<String> {
        store
            .list_audit(project)
            .unwrap()
            .into_iter()
            .map(|entry| format!("{}{}", entry.id, entry.method))
            .collect()
    };
    assert_eq!(
        methods(Some("p")),
        ["3c", "1a"],
        "newest first, one project"
    );
    assert_eq!(methods(None), ["3c", "2b", "1a"]);
}

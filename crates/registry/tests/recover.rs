//! A version create interrupted by a crash is closed cleanly when the registry starts again.

use std::sync::Arc;

use kiln_api::operation::OperationType;
use kiln_api::{Model, Operation, OperationMetadata, Policy, Version, VersionState};
use kiln_artifacts::ArtifactStore;
use kiln_registry::Registry;
use kiln_store::{SqliteStore, Store};

#[tokio::test]
async fn an_interrupted_version_create_becomes_failed_and_its_operation_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("kiln.db")).unwrap());
    store
        .create_model(
            "p",
            "m",
            &Model {
                name: "projects/p/models/m".into(),
                ..Model::default()
            },
            &Policy::default(),
        )
        .unwrap();
    let version = Version {
        name: "projects/p/models/m/versions/v1".into(),
        state: VersionState::Creating,
        ..Version::default()
    };
    store.create_version("p", "m", "v1", &version).unwrap();
    let operation = Operation {
        name: "projects/p/operations/create_m_v1-1".into(),
        metadata: OperationMetadata {
            model_name: "projects/p/models/m".into(),
            operation_type: OperationType::CreateVersion,
            version: Some(version),
            ..OperationMetadata::default()
        },
        ..Operation::default()
    };
    store
        .create_operation("p", "create_m_v1-1", &operation, "", &Policy::default())
        .unwrap();

    let registry = Registry::new(
        store.clone(),
        kiln_registry::Access::new(store.clone(), false),
        ArtifactStore::open(&dir.path().join("artifacts")).unwrap(),
        kiln_artifacts::PathPolicy::new(dir.path(), Vec::new()),
        kiln_registry::BatchConfig::default(),
        None,
    );
    let roll = registry.identity().roll(&*store).unwrap();
    assert_eq!(registry.recover(&roll).unwrap(), 1);
    let version = store.get_version("p", "m", "v1").unwrap().unwrap();
    assert_eq!(version.state, VersionState::Failed);
    assert!(
        version.error_message.contains("the server stopped"),
        "{}",
        version.error_message
    );
    let operation = store.get_operation("p", "create_m_v1-1").unwrap().unwrap();
    assert!(operation.done);
    assert_eq!(operation.error.unwrap().code, 10);
    assert_eq!(
        registry.recover(&roll).unwrap(),
        0,
        "nothing left to recover"
    );
}

//! The operations `suggest` and `checkEarlyStoppingState` return: done when returned (Kiln answers
//! both at once), and kept under their location (`projects/{p}/locations/{l}/operations/{id}`) so
//! `locations.operations.get` finds them, after a restart too.

use kiln_api::study::{StudyOperation, StudyOperationResponse};

use super::{Studies, not_found};
use crate::RegistryError;

impl Studies {
    /// A finished operation carrying `response` (Kiln answers suggestions and stopping checks at
    /// once), kept so that `locations.operations.get` finds it.
    pub(super) fn operation(
        &self,
        project: &str,
        location: &str,
        response: StudyOperationResponse,
    ) -> Result<StudyOperation, RegistryError> {
        let operation = StudyOperation {
            name: format!(
                "projects/{project}/locations/{location}/operations/{}",
                uuid::Uuid::new_v4().simple()
            ),
            done: true,
            response,
        };
        self.store.put_location_operation(project, &operation)?;
        Ok(operation)
    }

    /// `locations.operations.get`: an operation a study of `project` returned in `location`.
    pub fn get_operation(
        &self,
        project: &str,
        location: &str,
        id: &str,
    ) -> Result<StudyOperation, RegistryError> {
        let name = format!("projects/{project}/locations/{location}/operations/{id}");
        self.store
            .get_location_operation(project, &name)?
            .ok_or_else(|| not_found(&format!("operation {name:?}")))
    }

    /// `locations.operations.cancel`: Kiln's study operations are done when they are returned,
    /// so there is nothing left to cancel; an operation that does not exist is not found.
    pub fn cancel_operation(
        &self,
        project: &str,
        location: &str,
        id: &str,
    ) -> Result<(), RegistryError> {
        self.get_operation(project, location, id).map(drop)
    }
}

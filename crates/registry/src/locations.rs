//! The locations a project may name and what each can do (`projects.locations`), and a project's
//! configuration (`projects.getConfig`).
//!
//! Kiln runs the work of every location on the one executor it was started with, so every
//! location can do the same: train, predict in batches and predict online, with a GPU wherever
//! the executor's nodes have one.

use kiln_api::location::{
    Capability, CapabilityType, Config, GetConfigResponse, ListLocationsResponse, Location,
};
use kiln_api::names::check_project;

use crate::RegistryError;
use crate::list::ListParams;

/// ML Engine's regions, which are Kiln's locations.
pub const REGIONS: &[&str] = &[
    "asia-east1",
    "asia-northeast1",
    "asia-southeast1",
    "australia-southeast1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "northamerica-northeast1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-west1",
];

/// The GPU types a job may name in `acceleratorConfig` where a node has GPUs: Kiln gives each a
/// GPU of whatever kind the node has.
pub const GPU_TYPES: &[&str] = &[
    "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100",
];

/// `region` as `projects.locations` describes it; `gpus`: whether a node has GPUs.
fn describe(project: &str, region: &str, gpus: bool) -> Location {
    let accelerators: Vec<String> = match gpus {
        true => GPU_TYPES.iter().map(|kind| kind.to_string()).collect(),
        false => Vec::new(),
    };
    Location {
        name: format!("projects/{project}/locations/{region}"),
        capabilities: [
            CapabilityType::Training,
            CapabilityType::BatchPrediction,
            CapabilityType::OnlinePrediction,
        ]
        .into_iter()
        .map(|kind| Capability {
            kind,
            available_accelerators: accelerators.clone(),
        })
        .collect(),
    }
}

/// `projects.locations.get`.
pub fn get(project: &str, location: &str, gpus: bool) -> Result<Location, RegistryError> {
    check_project(project).map_err(RegistryError::InvalidArgument)?;
    match REGIONS.contains(&location) {
        true => Ok(describe(project, location, gpus)),
        false => Err(RegistryError::NotFound(format!(
            "location {location:?} was not found; the locations are {}",
            REGIONS.join(", ")
        ))),
    }
}

/// `projects.locations.list`, paged as every list is.
pub fn list(
    project: &str,
    params: &ListParams,
    gpus: bool,
) -> Result<ListLocationsResponse, RegistryError> {
    check_project(project).map_err(RegistryError::InvalidArgument)?;
    let all = REGIONS
        .iter()
        .map(|region| describe(project, region, gpus))
        .collect();
    let page = params.page(all, |location: &Location| location.name.clone())?;
    Ok(ListLocationsResponse {
        locations: page.items,
        next_page_token: page.next_page_token.unwrap_or_default(),
    })
}

/// `projects.getConfig`: `account` is who jobs run as (the server's user, on its nodes).
pub fn config(project: &str, account: &str) -> Result<GetConfigResponse, RegistryError> {
    check_project(project).map_err(RegistryError::InvalidArgument)?;
    Ok(GetConfigResponse {
        service_account: account.to_string(),
        service_account_project: String::new(),
        config: Config::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_can_do_everything_with_the_gpus_the_nodes_have() {
        let location = get("p", "europe-west4", true).unwrap();
        assert_eq!(location.name, "projects/p/locations/europe-west4");
        assert_eq!(location.capabilities.len(), 3);
        assert!(
            location
                .capabilities
                .iter()
                .all(|capability| capability.available_accelerators.len() == GPU_TYPES.len())
        );
        let without = get("p", "us-central1", false).unwrap();
        assert!(
            without
                .capabilities
                .iter()
                .all(|capability| capability.available_accelerators.is_empty())
        );
        let error = get("p", "mars-north1", false).unwrap_err().to_string();
        assert!(
            error.contains("mars-north1") && error.contains("us-central1"),
            "{error}"
        );
    }

    #[test]
    fn locations_page_like_every_list() {
        let params = ListParams {
            page_size: Some(5),
            ..ListParams::default()
        };
        let first = list("p", &params, false).unwrap();
        assert_eq!(first.locations.len(), 5);
        let mut seen: Vec<String> = first.locations.iter().map(|l| l.name.clone()).collect();
        let mut token = first.next_page_token;
        while !token.is_empty() {
            let next = ListParams {
                page_size: Some(5),
                page_token: Some(token),
                ..ListParams::default()
            };
            let page = list("p", &next, false).unwrap();
            seen.extend(page.locations.iter().map(|l| l.name.clone()));
            token = page.next_page_token;
        }
        assert_eq!(seen.len(), REGIONS.len());
    }
}

//! Azure public regions: the one table of locations the stand-in accepts, and ARM's 400s for
//! a resource group or resource placed anywhere else (`LocationNotAvailableForResourceGroup`,
//! `LocationNotAvailableForResourceType`). Names compare as ARM compares them, ignoring case
//! and spaces (`West Europe` is `westeurope`).

use axum::http::StatusCode;

use super::error::ArmError;
use super::providers::same_location;

/// Azure public-cloud regions (programmatic names) where resource groups, AKS clusters,
/// storage accounts and backup vaults can be created.
pub const PUBLIC_REGIONS: [&str; 50] = [
    "eastus",
    "eastus2",
    "southcentralus",
    "westus2",
    "westus3",
    "australiaeast",
    "southeastasia",
    "northeurope",
    "swedencentral",
    "uksouth",
    "westeurope",
    "centralus",
    "southafricanorth",
    "centralindia",
    "eastasia",
    "japaneast",
    "koreacentral",
    "newzealandnorth",
    "canadacentral",
    "francecentral",
    "germanywestcentral",
    "italynorth",
    "norwayeast",
    "polandcentral",
    "spaincentral",
    "switzerlandnorth",
    "mexicocentral",
    "uaenorth",
    "brazilsouth",
    "israelcentral",
    "qatarcentral",
    "northcentralus",
    "westus",
    "japanwest",
    "westcentralus",
    "southafricawest",
    "australiacentral",
    "australiacentral2",
    "australiasoutheast",
    "koreasouth",
    "southindia",
    "westindia",
    "canadaeast",
    "francesouth",
    "germanynorth",
    "norwaywest",
    "switzerlandwest",
    "ukwest",
    "uaecentral",
    "brazilsoutheast",
];

/// Whether `location` is a region of the table.
pub fn is_known(location: &str) -> bool {
    PUBLIC_REGIONS.iter().any(|r| same_location(r, location))
}

/// The regions where `resource_type` (`Namespace/type`) is offered: every region of the
/// table for the types the stand-in serves.
pub fn available_for(_resource_type: &str) -> &'static [&'static str] {
    &PUBLIC_REGIONS
}

/// A resource group's location.
///
/// # Errors
/// 400 `LocationNotAvailableForResourceGroup`.
pub fn check_group_location(location: &str) -> Result<(), ArmError> {
    if is_known(location) {
        return Ok(());
    }
    Err(ArmError::new(
        StatusCode::BAD_REQUEST,
        "LocationNotAvailableForResourceGroup",
        format!(
            "The provided location '{location}' is not available for resource group. List of available regions is '{}'.",
            PUBLIC_REGIONS.join(",")
        ),
    ))
}

/// A resource's location, for its type (`Microsoft.Storage/storageAccounts`).
///
/// # Errors
/// 400 `LocationNotAvailableForResourceType`.
pub fn check_resource_location(location: &str, resource_type: &str) -> Result<(), ArmError> {
    let available = available_for(resource_type);
    if available.iter().any(|r| same_location(r, location)) {
        return Ok(());
    }
    Err(ArmError::new(
        StatusCode::BAD_REQUEST,
        "LocationNotAvailableForResourceType",
        format!(
            "The provided location '{location}' is not available for resource type '{resource_type}'. List of available regions for the resource type is '{}'.",
            available.join(",")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_match_ignoring_case_and_spaces() {
        assert!(check_group_location("westeurope").is_ok());
        assert!(check_group_location("West Europe").is_ok());
        assert!(check_resource_location("EastUS", "Microsoft.Storage/storageAccounts").is_ok());
    }

    #[test]
    fn unknown_locations_get_arms_400s_with_the_available_regions() {
        let group = check_group_location("atlantis").unwrap_err();
        assert_eq!(group.status, StatusCode::BAD_REQUEST);
        assert_eq!(group.code, "LocationNotAvailableForResourceGroup");
        assert!(
            group
                .message
                .starts_with("The provided location 'atlantis' is not available for resource group. List of available regions is 'eastus,eastus2,"),
            "{}",
            group.message
        );
        let account =
            check_resource_location("atlantis", "Microsoft.Storage/storageAccounts").unwrap_err();
        assert_eq!(account.status, StatusCode::BAD_REQUEST);
        assert_eq!(account.code, "LocationNotAvailableForResourceType");
        assert!(
            account.message.starts_with(
                "The provided location 'atlantis' is not available for resource type 'Microsoft.Storage/storageAccounts'. List of available regions for the resource type is 'eastus,"
            ),
            "{}",
            account.message
        );
        assert!(account.message.ends_with(",brazilsoutheast'."));
    }
}

"""Real-client conformance: the Azure SDKs for Python run AKS backup's onboarding and restore
chains against an ARM endpoint (the ARM stand-in) with a ManagedIdentityCredential, as a script
or automation of a customer would, and every answer is checked against what the real service
does (the Azure docs cited beside each check). Prints one PASS/FAIL line per check and a
summary; exits 1 if any check failed. Never prints a token.

Environment (what `local --stay` writes to .local/standins.env, plus the cluster):
  BACKUP_PILOT_ARM_URL          ARM's base URL (https://...)
  IDENTITY_ENDPOINT, IDENTITY_HEADER   the App Service managed-identity endpoint
  REQUESTS_CA_BUNDLE            the CA bundle ARM's certificate chains to
  SDK_CHAIN_CLUSTER_ID          an AKS cluster without the backup extension
  SDK_CHAIN_TENANT_ID           the tenant of the identities
  SDK_CHAIN_API_VERSIONS        optional JSON {resource type: api-version}: checked against
                                what each SDK client sends by default
Run by e2e/tests/e2e/python_sdk_conformance.rs with the SDKs of requirements.txt.
"""

import copy
import json
import os
import sys
import time
import traceback
import uuid

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.dataprotection import DataProtectionMgmtClient
from azure.mgmt.kubernetesconfiguration import SourceControlConfigurationClient
from azure.mgmt.resource import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

ARM_SCOPE = "https://management.azure.com/.default"
# Built-in role definition GUIDs, the same in every public-cloud tenant
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
STORAGE_ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BACKUP_OPERATOR = "Microsoft.DataProtection/backupVaults/backup-operator"
AKS = "Microsoft.ContainerService/managedClusters"
# A region no Azure cloud has.
NOWHERE = "marsnorth"
# Real time allowed for anything the script waits for (role propagation, jobs).
PATIENCE_SECONDS = float(os.environ.get("SDK_CHAIN_PATIENCE_SECONDS", "180"))


class Checks:
    """PASS/FAIL lines and their count."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS: {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {name}: {detail}", flush=True)
        return ok

    def equal(self, name, actual, expected):
        return self.check(name, actual == expected, f"got {actual!r}, expected {expected!r}")


def error_code(error):
    """The ARM error code of an SDK exception (`error.code`, as azure-core parses it)."""
    return getattr(getattr(error, "error", None), "code", None)


def expect_error(checks, name, call, exception, codes, status=None):
    """Checks that `call` raises `exception` with one of `codes` (any code when `codes` is
    None) and `status`."""
    try:
        call()
    except exception as error:
        code = error_code(error)
        ok = (codes is None or code in codes) and (status is None or error.status_code == status)
        return checks.check(name, ok, f"HTTP {error.status_code} {code}: {error.message}")
    return checks.check(name, False, f"no {exception.__name__} raised")


def wait_for(what, probe):
    """Calls `probe` until it returns something truthy or the patience runs out."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {PATIENCE_SECONDS:.0f} s")
        time.sleep(0.5)


def parse_cluster_id(cluster_id):
    parts = cluster_id.strip("/").split("/")
    if len(parts) != 8 or parts[0].lower() != "subscriptions" or parts[6].lower() != "managedclusters":
        raise ValueError(f"SDK_CHAIN_CLUSTER_ID is not a managed cluster id: {cluster_id}")
    return parts[1], parts[3], parts[7]


class Chain:
    """The clients, the names the chain creates and what it learns on the way."""

    def __init__(self, checks):
        self.checks = checks
        self.cluster_id = os.environ["SDK_CHAIN_CLUSTER_ID"]
        self.sub, self.cluster_rg, self.cluster = parse_cluster_id(self.cluster_id)
        self.credential = ManagedIdentityCredential()
        options = {
            "base_url": os.environ["BACKUP_PILOT_ARM_URL"],
            "credential_scopes": [ARM_SCOPE],
            "connection_verify": os.environ["REQUESTS_CA_BUNDLE"],
            # Retry-After (and retry-after-ms) still rule; this is only the fallback.
            "polling_interval": 1,
        }
        self.resources = ResourceManagementClient(self.credential, self.sub, **options)
        self.storage = StorageManagementClient(self.credential, self.sub, **options)
        self.protection = DataProtectionMgmtClient(self.credential, self.sub, **options)
        self.extensions = SourceControlConfigurationClient(self.credential, self.sub, **options)
        self.aks = ContainerServiceClient(self.credential, self.sub, **options)
        self.authorization = AuthorizationManagementClient(self.credential, self.sub, **options)
        suffix = uuid.uuid4().hex[:8]
        self.rg = f"rg-sdk-backup-{suffix}"
        self.snapshot_rg = f"rg-sdk-snapshots-{suffix}"
        self.account = f"stsdk{suffix}"
        self.container = "aks-backups"
        self.vault = f"bv-sdk-{suffix}"
        self.policy = "aks-daily"
        self.instance = f"{self.cluster}-{suffix}"
        self.location = None

    # -- the clients' api-versions -------------------------------------------------------

    def api_versions(self):
        expected = json.loads(os.environ.get("SDK_CHAIN_API_VERSIONS", "{}"))

        def version(client, group):
            # Multi-API clients resolve per operation group; single-API ones have one version.
            getter = getattr(client, "_get_api_version", None)
            return getter(group) if getter else client._config.api_version

        sent = {
            "Microsoft.Resources/resourceGroups": version(self.resources, "resource_groups"),
            "Microsoft.Storage/storageAccounts": version(self.storage, "storage_accounts"),
            "Microsoft.DataProtection/backupVaults": version(self.protection, "backup_vaults"),
            "Microsoft.DataProtection/backupVaults/backupPolicies": version(self.protection, "backup_policies"),
            "Microsoft.DataProtection/backupVaults/backupInstances": version(self.protection, "backup_instances"),
            "Microsoft.KubernetesConfiguration/extensions": version(self.extensions, "extensions"),
            AKS: version(self.aks, "managed_clusters"),
            f"{AKS}/trustedAccessRoleBindings": version(self.aks, "trusted_access_role_bindings"),
            "Microsoft.Authorization/roleAssignments": version(self.authorization, "role_assignments"),
        }
        # ARM refuses an api-version the provider does not publish (400 InvalidApiVersionParameter
        # / NoRegisteredProviderFound, learn.microsoft.com/azure/azure-resource-manager/
        # troubleshooting/error-register-resource-provider); the stand-in serves the product's
        # versions only, so each SDK's own default must be one of them.
        for resource_type, want in sorted(expected.items()):
            if resource_type in sent:
                self.checks.equal(f"the SDK's default api-version for {resource_type}", sent[resource_type], want)

    # -- onboarding ----------------------------------------------------------------------

    def token(self):
        # App Service managed identity: GET {IDENTITY_ENDPOINT}?resource=...&api-version=2019-08-01
        # with X-IDENTITY-HEADER answers a bearer token and its expiry
        # (learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference).
        token = self.credential.get_token(ARM_SCOPE)
        self.checks.check("ManagedIdentityCredential gets an ARM token", bool(token.token))
        self.checks.check("the token expires in the future", token.expires_on > time.time(), token.expires_on)

    def cluster_facts(self):
        cluster = self.aks.managed_clusters.get(self.cluster_rg, self.cluster)
        # ManagedClusters_Get returns the cluster with its id and location (AKS REST reference).
        self.checks.check("the cluster's id is its ARM id", cluster.id.lower() == self.cluster_id.lower(), cluster.id)
        self.location = cluster.location
        self.cluster_principal = cluster.identity.principal_id if cluster.identity else None
        # A system-assigned identity has a principalId (learn.microsoft.com/azure/aks/use-managed-identity).
        self.checks.check("the cluster has a system-assigned identity", bool(self.cluster_principal), cluster.identity)

    def providers(self):
        # Azure Backup for AKS needs Microsoft.KubernetesConfiguration and Microsoft.DataProtection
        # registered; registration goes Registering -> Registered
        # (learn.microsoft.com/azure/azure-resource-manager/management/resource-providers-and-types).
        for namespace in ("Microsoft.DataProtection", "Microsoft.KubernetesConfiguration"):
            self.resources.providers.register(namespace)
            state = wait_for(
                f"{namespace} registration",
                lambda ns=namespace: (lambda s: s if s == "Registered" else None)(
                    self.resources.providers.get(ns).registration_state
                ),
            )
            self.checks.equal(f"{namespace} ends Registered", state, "Registered")

    def resource_groups(self):
        for name in (self.rg, self.snapshot_rg):
            group = self.resources.resource_groups.create_or_update(name, {"location": self.location})
            # ResourceGroups_CreateOrUpdate is synchronous: 201/200 with provisioningState
            # Succeeded (resources.json 2022-09-01).
            self.checks.equal(f"resource group {name} is created", group.properties.provisioning_state, "Succeeded")
        # HEAD answers 204 for an existing group, 404 for a missing one (ResourceGroups_CheckExistence).
        self.checks.equal("check_existence finds the group", self.resources.resource_groups.check_existence(self.rg), True)
        self.checks.equal(
            "check_existence misses a missing group",
            self.resources.resource_groups.check_existence(f"{self.rg}-missing"),
            False,
        )
        # An unknown region: 400 LocationNotAvailableForResourceGroup, "The provided location
        # '...' is not available for resource group. List of available regions is '...'." (ARM
        # checks a group's location against the regions of Microsoft.Resources/resourceGroups;
        # learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors).
        expect_error(
            self.checks,
            "a resource group in an unknown region is refused",
            lambda: self.resources.resource_groups.create_or_update(f"{self.rg}-nowhere", {"location": NOWHERE}),
            HttpResponseError,
            {"LocationNotAvailableForResourceGroup"},
            400,
        )
        # A missing group: 404 ResourceGroupNotFound (learn.microsoft.com/azure/azure-resource-manager/
        # troubleshooting/error-not-found), raised by the SDK as ResourceNotFoundError.
        expect_error(
            self.checks,
            "getting a missing resource group is a ResourceNotFoundError",
            lambda: self.resources.resource_groups.get(f"{self.rg}-missing"),
            ResourceNotFoundError,
            {"ResourceGroupNotFound"},
            404,
        )

    def storage_account(self):
        # Name availability: nameAvailable true for an unused name (StorageAccounts_CheckNameAvailability).
        available = self.storage.storage_accounts.check_name_availability(
            {"name": self.account, "type": "Microsoft.Storage/storageAccounts"}
        )
        self.checks.equal("the storage account name is available", available.name_available, True)
        body = {
            "location": self.location,
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "properties": {
                "allowBlobPublicAccess": False,
                "allowSharedKeyAccess": False,
                "minimumTlsVersion": "TLS1_2",
                "supportsHttpsTrafficOnly": True,
            },
        }
        account = self.storage.storage_accounts.begin_create(self.rg, self.account, body).result()
        # StorageAccounts_Create is an LRO (202 + Location); the final account is Succeeded
        # with its blob endpoint https://{name}.blob.core.windows.net/ (storage.json).
        self.checks.equal("the storage account is created", account.provisioning_state, "Succeeded")
        self.checks.equal(
            "its blob endpoint",
            account.primary_endpoints.blob,
            f"https://{self.account}.blob.core.windows.net/",
        )
        self.blob_endpoint = account.primary_endpoints.blob
        self.account_id = account.id
        container = self.storage.blob_containers.create(
            self.rg, self.account, self.container, {"properties": {"publicAccess": "None"}}
        )
        # BlobContainers_Create is synchronous and returns the container (blob.json).
        self.checks.equal("the blob container is created", container.name, self.container)
        # An unknown region for a resource type: 400 LocationNotAvailableForResourceType, "The
        # provided location '...' is not available for resource type
        # 'Microsoft.Storage/storageAccounts'. List of available regions for the resource type
        # is '...'." (learn.microsoft.com/azure/azure-resource-manager/troubleshooting/
        # error-register-resource-provider: ARM checks the provider's locations for the type).
        expect_error(
            self.checks,
            "a storage account in an unknown region is refused",
            lambda: self.storage.storage_accounts.begin_create(
                self.rg, f"{self.account}x", {**body, "location": NOWHERE}
            ).result(),
            HttpResponseError,
            {"LocationNotAvailableForResourceType"},
            400,
        )
        # A missing account: 404 ResourceNotFound (learn.microsoft.com/azure/azure-resource-manager/
        # troubleshooting/error-not-found), raised by the SDK as ResourceNotFoundError.
        expect_error(
            self.checks,
            "getting a missing storage account is a ResourceNotFoundError",
            lambda: self.storage.storage_accounts.get_properties(self.rg, f"{self.account}none"),
            ResourceNotFoundError,
            {"ResourceNotFound"},
            404,
        )

    def vault_and_policy(self):
        body = {
            "location": self.location,
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}],
                "securitySettings": {"softDeleteSettings": {"state": "Off"}},
            },
        }
        vault = self.protection.backup_vaults.begin_create_or_update(self.rg, self.vault, body).result()
        # BackupVaults_CreateOrUpdate is an LRO; the vault ends Succeeded with its system-assigned
        # identity's principalId (learn.microsoft.com/azure/backup/create-manage-backup-vault).
        self.checks.equal("the backup vault is created", vault.properties.provisioning_state, "Succeeded")
        self.checks.check("the vault has a system-assigned identity", bool(vault.identity and vault.identity.principal_id))
        self.vault_id = vault.id
        self.vault_principal = vault.identity.principal_id
        policy = self.protection.backup_policies.create_or_update(self.rg, self.vault, self.policy, policy_body(4))
        # BackupPolicies_CreateOrUpdate is synchronous (dataprotection.json 2023-11-01); AKS
        # policies back up to the operational store (learn.microsoft.com/azure/backup/
        # azure-kubernetes-service-cluster-backup-using-cli#create-a-backup-policy).
        self.checks.equal("the AKS backup policy is created", policy.name, self.policy)
        self.checks.equal("its datasource type", policy.properties.datasource_types, [AKS])
        self.policy_id = policy.id

    def extension(self):
        settings = {
            "configuration.backupStorageLocation.bucket": self.container,
            "configuration.backupStorageLocation.config.storageAccount": self.account,
            "configuration.backupStorageLocation.config.resourceGroup": self.rg,
            "configuration.backupStorageLocation.config.subscriptionId": self.sub,
            "credentials.tenantId": self.tenant(),
            "configuration.backupStorageLocation.config.useAAD": "true",
            "configuration.backupStorageLocation.config.storageAccountURI": self.blob_endpoint,
        }
        body = {
            "properties": {
                "extensionType": "Microsoft.DataProtection.Kubernetes",
                "autoUpgradeMinorVersion": True,
                "releaseTrain": "stable",
                "scope": {"cluster": {"releaseNamespace": "dataprotection-microsoft"}},
                "configurationSettings": settings,
            }
        }
        extension = self.extensions.extensions.begin_create(
            self.cluster_rg, "Microsoft.ContainerService", "managedClusters", self.cluster, "azure-aks-backup", body
        ).result()
        # Extensions_Create is an LRO that ends Succeeded; the backup extension gets its own
        # identity, aksAssignedIdentity (learn.microsoft.com/azure/backup/
        # azure-kubernetes-service-cluster-manage-backups#install-backup-extension).
        self.checks.equal("the backup extension is installed", extension.provisioning_state, "Succeeded")
        self.checks.check(
            "the extension has an aksAssignedIdentity",
            bool(extension.aks_assigned_identity and extension.aks_assigned_identity.principal_id),
        )
        self.extension_principal = extension.aks_assigned_identity.principal_id
        listed = [e.name for e in self.extensions.extensions.list(
            self.cluster_rg, "Microsoft.ContainerService", "managedClusters", self.cluster
        )]
        # Extensions_List returns the cluster's extensions (extensions.json 2023-05-01).
        self.checks.check("Extensions_List has the extension", "azure-aks-backup" in listed, listed)

    def tenant(self):
        # The extension's credentials.tenantId is the tenant of the identities (learn.microsoft.com/
        # azure/backup/azure-kubernetes-service-cluster-manage-backups#install-backup-extension).
        return os.environ["SDK_CHAIN_TENANT_ID"]

    def role_assignments(self):
        cluster_scope = self.cluster_id
        snapshot_scope = f"/subscriptions/{self.sub}/resourceGroups/{self.snapshot_rg}"
        # The roles Azure Backup for AKS needs (learn.microsoft.com/azure/backup/
        # azure-kubernetes-service-cluster-backup-concept#required-roles-and-permissions).
        grants = [
            (self.vault_principal, READER, cluster_scope, "vault: Reader on the cluster"),
            (self.vault_principal, READER, snapshot_scope, "vault: Reader on the snapshot group"),
            (self.vault_principal, STORAGE_ACCOUNT_CONTRIBUTOR, self.account_id, "vault: Storage Account Contributor"),
            (self.vault_principal, STORAGE_BLOB_DATA_CONTRIBUTOR, self.account_id, "vault: Storage Blob Data Contributor"),
            (self.cluster_principal, CONTRIBUTOR, snapshot_scope, "cluster: Contributor on the snapshot group"),
            (self.extension_principal, STORAGE_BLOB_DATA_CONTRIBUTOR, self.account_id, "extension: Storage Blob Data Contributor"),
        ]
        for principal, role, scope, what in grants:
            assignment = self.assign(principal, role, scope)
            # RoleAssignments_Create answers 201 with the assignment (2022-04-01).
            self.checks.check(
                f"role assignment {what}",
                assignment.principal_id == principal and assignment.role_definition_id.lower().endswith(role),
                assignment,
            )
        # The same principal, role and scope under another name: 409 RoleAssignmentExists
        # (learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---role-assignment-already-exists).
        principal, role, scope, _ = grants[0]
        expect_error(
            self.checks,
            "a duplicate role assignment is RoleAssignmentExists",
            lambda: self.assign(principal, role, scope),
            HttpResponseError,
            {"RoleAssignmentExists"},
            409,
        )
        listed = list(self.authorization.role_assignments.list_for_scope(self.account_id))
        # RoleAssignments_ListForScope lists the assignments at (and above) the scope.
        mine = [a for a in listed if a.scope.lower() == self.account_id.lower()]
        self.checks.equal("the storage account lists its three assignments", len(mine), 3)

    def assign(self, principal, role, scope):
        return self.authorization.role_assignments.create(
            scope,
            str(uuid.uuid4()),
            {
                "properties": {
                    "roleDefinitionId": f"/subscriptions/{self.sub}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                    "principalId": principal,
                    # New identities are not replicated yet: principalType lets ARM skip the
                    # directory lookup (learn.microsoft.com/azure/role-based-access-control/
                    # role-assignments-template#new-service-principal).
                    "principalType": "ServicePrincipal",
                }
            },
        )

    def trusted_access(self):
        binding = self.aks.trusted_access_role_bindings.begin_create_or_update(
            self.cluster_rg,
            self.cluster,
            f"tarb-{self.vault}",
            {"properties": {"sourceResourceId": self.vault_id, "roles": [BACKUP_OPERATOR]}},
        ).result()
        # The vault needs trusted access with the backup-operator role
        # (learn.microsoft.com/azure/aks/trusted-access-feature); the binding ends Succeeded.
        self.checks.equal("the trusted access role binding is created", binding.provisioning_state, "Succeeded")
        self.checks.equal("it binds the vault", binding.source_resource_id.lower(), self.vault_id.lower())

    def backup_instance(self):
        datasource = {
            "datasourceType": AKS,
            "resourceID": self.cluster_id,
            "resourceUri": self.cluster_id,
            "resourceName": self.cluster,
            "resourceType": AKS,
            "resourceLocation": self.location,
        }
        self.instance_properties = {
            "objectType": "BackupInstance",
            "friendlyName": self.cluster,
            "dataSourceInfo": {"objectType": "Datasource", **datasource},
            "dataSourceSetInfo": {"objectType": "DatasourceSet", **datasource},
            "policyInfo": {
                "policyId": self.policy_id,
                "policyParameters": {
                    "backupDatasourceParametersList": [
                        {
                            "objectType": "KubernetesClusterBackupDatasourceParameters",
                            "includeClusterScopeResources": True,
                            "snapshotVolumes": True,
                            "includedNamespaces": ["app"],
                        }
                    ],
                    "dataStoreParametersList": [
                        {
                            "objectType": "AzureOperationalStoreParameters",
                            "dataStoreType": "OperationalStore",
                            "resourceGroupId": f"/subscriptions/{self.sub}/resourceGroups/{self.snapshot_rg}",
                        }
                    ],
                },
            },
        }

        # Role assignments take effect after propagation (up to 10 minutes, learn.microsoft.com/
        # azure/role-based-access-control/troubleshooting#symptom---role-assignment-changes-are-not-being-detected):
        # validateForBackup fails with a missing-permission user error until then.
        def validated():
            try:
                return self.protection.backup_instances.begin_validate_for_backup(
                    self.rg, self.vault, {"backupInstance": fresh(self.instance_properties)}
                ).result()
            except HttpResponseError as error:
                if "Permission" in (error_code(error) or ""):
                    return None
                raise

        result = wait_for("validateForBackup", validated)
        # BackupInstances_ValidateForBackup is an LRO whose result is OperationJobExtendedInfo.
        self.checks.equal("validateForBackup succeeds", result.object_type, "OperationJobExtendedInfo")
        instance = self.protection.backup_instances.begin_create_or_update(
            self.rg, self.vault, self.instance, {"properties": fresh(self.instance_properties)}
        ).result()
        self.checks.equal("the backup instance is created", instance.name, self.instance)
        # Protection is configured in the background: currentProtectionState becomes
        # ProtectionConfigured (learn.microsoft.com/azure/backup/azure-kubernetes-service-cluster-backup).
        state = wait_for(
            "protection",
            lambda: (lambda s: s if s == "ProtectionConfigured" else None)(
                self.protection.backup_instances.get(self.rg, self.vault, self.instance).properties.current_protection_state
            ),
        )
        self.checks.equal("the cluster ends ProtectionConfigured", state, "ProtectionConfigured")

    # -- restore -------------------------------------------------------------------------

    def follow_job(self, job_id):
        """Polls a backup job until it leaves InProgress; returns its properties."""

        def done():
            job = self.protection.jobs.get(self.rg, self.vault, job_id)
            return job.properties if job.properties.status != "InProgress" else None

        return wait_for(f"job {job_id}", done)

    def backup_now(self):
        result = self.protection.backup_instances.begin_adhoc_backup(
            self.rg,
            self.vault,
            self.instance,
            {"backupRuleOptions": {"ruleName": "BackupDaily", "triggerOption": {"retentionTagOverride": "Default"}}},
        ).result()
        # BackupInstances_AdhocBackup is an LRO whose result names the job (OperationJobExtendedInfo.jobId).
        self.checks.check("an on-demand backup starts a job", bool(result.job_id), result)
        job = self.follow_job(result.job_id)
        # Jobs end Completed when the backup succeeded (learn.microsoft.com/azure/backup/
        # azure-kubernetes-service-cluster-manage-backups#monitor-backup-jobs).
        self.checks.equal("the backup job completes", job.status, "Completed")
        self.checks.equal("it is a backup job", job.operation_category, "Backup")

    def restore(self):
        points = list(self.protection.recovery_points.list(self.rg, self.vault, self.instance))
        # RecoveryPoints_List returns the instance's recovery points, each an
        # AzureBackupDiscreteRecoveryPoint with its time (dataprotection.json 2023-11-01).
        self.checks.check("the backup made a recovery point", len(points) >= 1, points)
        if not points:
            return
        point = points[0]
        self.checks.equal(
            "the point is a discrete recovery point", point.properties.object_type, "AzureBackupDiscreteRecoveryPoint"
        )
        target = {"objectType": "Datasource", "resourceID": self.cluster_id, "datasourceType": AKS}
        request = {
            "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
            "recoveryPointId": point.name,
            "sourceDataStoreType": "OperationalStore",
            "restoreTargetInfo": {
                "objectType": "ItemLevelRestoreTargetInfo",
                "recoveryOption": "FailIfExists",
                "restoreLocation": self.location,
                "datasourceInfo": target,
                "datasourceSetInfo": {**target, "objectType": "DatasourceSet"},
                "restoreCriteria": [
                    {
                        "objectType": "KubernetesClusterRestoreCriteria",
                        "includeClusterScopeResources": True,
                        "conflictPolicy": "Skip",
                        "persistentVolumeRestoreMode": "RestoreWithVolumeData",
                        "includedNamespaces": ["app"],
                        "namespaceMappings": {"app": "app-restored"},
                    }
                ],
            },
        }
        validated = self.protection.backup_instances.begin_validate_for_restore(
            self.rg, self.vault, self.instance, {"restoreRequestObject": fresh(request)}
        ).result()
        # BackupInstances_ValidateForRestore is an LRO ending in OperationJobExtendedInfo.
        self.checks.equal("validateForRestore succeeds", validated.object_type, "OperationJobExtendedInfo")
        result = self.protection.backup_instances.begin_trigger_restore(self.rg, self.vault, self.instance, fresh(request)).result()
        # BackupInstances_TriggerRestore is an LRO whose result names the restore job
        # (learn.microsoft.com/azure/backup/azure-kubernetes-service-cluster-restore-using-cli).
        self.checks.check("the restore starts a job", bool(result.job_id), result)
        job = self.follow_job(result.job_id)
        self.checks.equal("the restore job completes", job.status, "Completed")
        self.checks.equal("it is a restore job", job.operation_category, "Restore")

    # -- reads and deletes ---------------------------------------------------------------

    def listings(self):
        in_group = [c.id.lower() for c in self.aks.managed_clusters.list_by_resource_group(self.cluster_rg)]
        # ManagedClusters_ListByResourceGroup and ManagedClusters_List page through the
        # clusters of a group / of the subscription (AKS REST reference, managedClusters.json).
        self.checks.check("the group's clusters include the cluster", self.cluster_id.lower() in in_group, in_group)
        everywhere = [c.id.lower() for c in self.aks.managed_clusters.list()]
        self.checks.check("the subscription's clusters include it", self.cluster_id.lower() in everywhere, everywhere)
        self.checks.equal(
            "a group without clusters lists none",
            list(self.aks.managed_clusters.list_by_resource_group(self.rg)),
            [],
        )
        vaults = [v.name for v in self.protection.backup_vaults.get_in_resource_group(self.rg)]
        # BackupVaults_GetInResourceGroup lists the group's vaults.
        self.checks.equal("the group's vaults", vaults, [self.vault])

    def delete_policy(self):
        spare = f"{self.policy}-spare"
        self.protection.backup_policies.create_or_update(self.rg, self.vault, spare, policy_body(7))
        # BackupPolicies_Delete answers 200/204; afterwards the policy is gone: 404, raised as
        # ResourceNotFoundError (dataprotection.json 2023-11-01 declares no code for a policy,
        # which the provider answers, not ARM: only the status is held).
        self.protection.backup_policies.delete(self.rg, self.vault, spare)
        expect_error(
            self.checks,
            "a deleted backup policy is a ResourceNotFoundError",
            lambda: self.protection.backup_policies.get(self.rg, self.vault, spare),
            ResourceNotFoundError,
            None,
            404,
        )
        names = [p.name for p in self.protection.backup_policies.list(self.rg, self.vault)]
        # BackupPolicies_List no longer has it.
        self.checks.equal("the vault lists the remaining policy", names, [self.policy])
        # A missing vault: 404 ResourceNotFound ("The Resource 'Microsoft.DataProtection/
        # backupVaults/...' under resource group '...' was not found", learn.microsoft.com/azure/
        # azure-resource-manager/troubleshooting/error-not-found), a ResourceNotFoundError.
        expect_error(
            self.checks,
            "getting a missing backup vault is a ResourceNotFoundError",
            lambda: self.protection.backup_vaults.get(self.rg, f"{self.vault}-missing"),
            ResourceNotFoundError,
            {"ResourceNotFound"},
            404,
        )


def fresh(body):
    """A copy of a request body for one call: the SDKs' serializer pops the discriminators
    (`objectType`) out of the dicts it is given while it reads them into models."""
    return copy.deepcopy(body)


def policy_body(retention_days):
    """An AKS backup policy: daily incremental backups to the operational store, kept
    `retention_days` days (the CLI's default AKS policy template, `az dataprotection
    backup-policy get-default-policy-template --datasource-type AzureKubernetesService`)."""
    store = {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"}
    return {
        "properties": {
            "objectType": "BackupPolicy",
            "datasourceTypes": [AKS],
            "policyRules": [
                {
                    "objectType": "AzureRetentionRule",
                    "name": "Default",
                    "isDefault": True,
                    "lifecycles": [
                        {
                            "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": f"P{retention_days}D"},
                            "sourceDataStore": store,
                            "targetDataStoreCopySettings": [],
                        }
                    ],
                },
                {
                    "objectType": "AzureBackupRule",
                    "name": "BackupDaily",
                    "backupParameters": {"objectType": "AzureBackupParams", "backupType": "Incremental"},
                    "dataStore": store,
                    "trigger": {
                        "objectType": "ScheduleBasedTriggerContext",
                        "schedule": {
                            "repeatingTimeIntervals": ["R/2024-01-01T02:00:00+00:00/P1D"],
                            "timeZone": "Coordinated Universal Time",
                        },
                        "taggingCriteria": [
                            {"isDefault": True, "tagInfo": {"tagName": "Default"}, "taggingPriority": 99}
                        ],
                    },
                },
            ],
        }
    }


def main():
    checks = Checks()
    chain = Chain(checks)
    steps = [
        chain.api_versions,
        chain.token,
        chain.cluster_facts,
        chain.providers,
        chain.resource_groups,
        chain.storage_account,
        chain.vault_and_policy,
        chain.extension,
        chain.role_assignments,
        chain.trusted_access,
        chain.backup_instance,
        chain.backup_now,
        chain.restore,
        chain.listings,
        chain.delete_policy,
    ]
    for step in steps:
        try:
            step()
        except Exception as error:  # a step that cannot go on ends the chain
            checks.check(step.__name__, False, f"{type(error).__name__}: {error}")
            traceback.print_exc(limit=3)
            break
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())

// Opens one target subscription (where the AKS clusters live) to the service: a custom role
// with exactly the ARM operations the service performs, Role Based Access Control Administrator
// limited by a condition to the roles the guide's RBAC needs, and the Event Grid system topic
// whose filtered subscription sends managedClusters writes and deletes to cluster-events.
// Deploy once per target subscription:
//   az deployment sub create --subscription <target> -l <region> -f infra/target/main.bicep ...
// infra/README.md ("Permissions") explains every action and role.

targetScope = 'subscription'

@description('Principal (object) id of the service identity (service deployment output servicePrincipalId).')
param servicePrincipalId string

@description('Resource id of the cluster-events queue (service deployment output clusterEventsQueueId).')
param clusterEventsQueueId string

@description('Resource id of the storage account for undeliverable events (output eventDeadLetterStorageId).')
param eventDeadLetterStorageId string

@description('Blob container for undeliverable events (output eventDeadLetterContainer).')
param eventDeadLetterContainer string = 'event-deadletters'

@description('Region of the resource group that holds the system topic.')
param location string = deployment().location

@description('Resource group (created here) for the Event Grid system topic.')
param eventsResourceGroupName string = 'rg-backup-pilot-events'

@description('Name of the system topic. A subscription has at most one system topic for its own events: if one exists, give its name, resource group and region; this deployment then adds a system-assigned identity and the event subscription to it.')
param systemTopicName string = 'backup-pilot-subscription-events'

@description('Also let the service assign Disk Snapshot Contributor and Storage Blob Data Reader (the az CLI enable-backup role set; the guide does not need them).')
param allowOptionalRoles bool = false

@description('Let the service scale a node pool that is too small for the backup extension (guide gotcha 2).')
param allowNodePoolScaling bool = true

@description('Tags for the resource group and topic.')
param tags object = {}

// Built-in roles the service may assign (guide phase 2 RBAC) and the administrator role.
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c'
var storageAccountContributor = '17d1049b-9a84-46fb-8f53-869881c3d3ab'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var diskSnapshotContributor = '7efff54f-a5b4-42b5-a1c5-5411624893ce'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var rbacAdministrator = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'

var assignableRoles = concat([
  reader
  contributor
  storageAccountContributor
  storageBlobDataContributor
], allowOptionalRoles ? [
  diskSnapshotContributor
  storageBlobDataReader
] : [])
var assignableRoleList = join(assignableRoles, ', ')

// Writes: only the listed roles, only to service principals (managed identities are service
// principals), never to the service itself (so it cannot grant itself Contributor).
// Deletes: only assignments of the listed roles to service principals.
var assignmentCondition = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${assignableRoleList}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAllValues:GuidNotEquals {${servicePrincipalId}})) AND ((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${assignableRoleList}} AND @Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'}))'

// The ARM operations of the service, nothing else (infra/README.md gives the reason for each).
var operatorActions = concat([
  'Microsoft.KubernetesConfiguration/register/action'
  'Microsoft.DataProtection/register/action'
  'Microsoft.Resources/subscriptions/resourceGroups/read'
  'Microsoft.Resources/subscriptions/resourceGroups/write'
  'Microsoft.ContainerService/managedClusters/read'
  'Microsoft.ContainerService/managedClusters/write'
  'Microsoft.ContainerService/managedClusters/listClusterUserCredential/action'
  'Microsoft.ContainerService/managedClusters/agentPools/read'
  'Microsoft.ContainerService/managedClusters/trustedAccessRoleBindings/read'
  'Microsoft.ContainerService/managedClusters/trustedAccessRoleBindings/write'
  'Microsoft.ContainerService/managedClusters/trustedAccessRoleBindings/delete'
  'Microsoft.ContainerService/locations/*/read'
  'Microsoft.KubernetesConfiguration/extensions/read'
  'Microsoft.KubernetesConfiguration/extensions/write'
  'Microsoft.KubernetesConfiguration/extensions/delete'
  'Microsoft.KubernetesConfiguration/extensions/operations/read'
  'Microsoft.Storage/checknameavailability/read'
  'Microsoft.Storage/storageAccounts/read'
  'Microsoft.Storage/storageAccounts/write'
  'Microsoft.Storage/storageAccounts/blobServices/read'
  'Microsoft.Storage/storageAccounts/blobServices/containers/read'
  'Microsoft.Storage/storageAccounts/blobServices/containers/write'
  'Microsoft.DataProtection/locations/*'
  'Microsoft.DataProtection/backupVaults/read'
  'Microsoft.DataProtection/backupVaults/write'
  'Microsoft.DataProtection/backupVaults/operationResults/read'
  'Microsoft.DataProtection/backupVaults/operationStatus/read'
  'Microsoft.DataProtection/backupVaults/backupPolicies/read'
  'Microsoft.DataProtection/backupVaults/backupPolicies/write'
  'Microsoft.DataProtection/backupVaults/validateForBackup/action'
  'Microsoft.DataProtection/backupVaults/backupInstances/*'
  'Microsoft.DataProtection/backupVaults/backupJobs/read'
  'Microsoft.Authorization/roleAssignments/read'
], allowNodePoolScaling ? [
  'Microsoft.ContainerService/managedClusters/agentPools/write'
] : [])

resource operatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'aks-backup-pilot-operator')
  properties: {
    roleName: 'AKS Backup Pilot operator (${subscription().subscriptionId})'
    description: 'The ARM operations of the aks-backup-pilot service: onboard AKS clusters to Azure Backup, run restores and drills. No deletes of vaults, policies, storage or resource groups; no storage keys.'
    type: 'CustomRole'
    assignableScopes: [
      subscription().id
    ]
    permissions: [
      {
        actions: operatorActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

resource operatorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, servicePrincipalId, 'aks-backup-pilot-operator')
  properties: {
    description: 'backup-pilot: the ARM operations of onboarding, restores and drills'
    roleDefinitionId: operatorRole.id
    principalId: servicePrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource rbacAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, servicePrincipalId, rbacAdministrator)
  properties: {
    description: 'backup-pilot: assigns the guide\'s backup roles to vault, cluster and extension identities only'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministrator)
    principalId: servicePrincipalId
    principalType: 'ServicePrincipal'
    condition: assignmentCondition
    conditionVersion: '2.0'
  }
}

resource eventsGroup 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: eventsResourceGroupName
  location: location
  tags: tags
}

module events 'events.bicep' = {
  name: 'backup-pilot-events'
  scope: eventsGroup
  params: {
    systemTopicName: systemTopicName
    clusterEventsQueueId: clusterEventsQueueId
    eventDeadLetterStorageId: eventDeadLetterStorageId
    eventDeadLetterContainer: eventDeadLetterContainer
    tags: tags
  }
}

@description('Resource id of the custom operator role.')
output operatorRoleId string = operatorRole.id

@description('Principal id of the system topic identity (granted Data Sender on cluster-events).')
output systemTopicPrincipalId string = events.outputs.topicPrincipalId

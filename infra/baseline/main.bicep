// The guide's phase 1 backup baseline for teams that pre-provision instead of letting the service
// create it: the main and snapshot resource groups, the backup storage account and container,
// the backup vault and a daily backup policy, with the guide's API versions and the roles the
// vault needs on its snapshot resource group and storage (guide phase 2, cluster-independent).
// Parameter files poc.parameters.json / production.parameters.json follow the guide's cost table.
//   az deployment sub create -l <region> -f infra/baseline/main.bicep -p infra/baseline/poc.parameters.json

targetScope = 'subscription'

@description('Prefix of the resource group names: rg-{prefix} and rg-{prefix}-snapshots (guide phase 1).')
@minLength(1)
@maxLength(50)
param prefix string

@description('Region of both resource groups and every resource.')
param location string = deployment().location

@description('Backup storage replication: Standard_LRS (PoC) or Standard_GRS (production).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_LRS'

@description('Vault storage redundancy: LocallyRedundant (PoC) or GeoRedundant (production).')
@allowed([
  'LocallyRedundant'
  'ZoneRedundant'
  'GeoRedundant'
])
param vaultRedundancy string = 'LocallyRedundant'

@description('Vault soft delete: Off (PoC, easy cleanup) or On (production).')
@allowed([
  'Off'
  'On'
])
param softDelete string = 'Off'

@description('Days soft-deleted backup data is kept when softDelete is On (14 to 180).')
@minValue(14)
@maxValue(180)
param softDeleteRetentionDays int = 14

@description('Operational-tier retention of each daily backup, ISO 8601 (P1D for a PoC; production per policy).')
param retention string = 'P1D'

@description('Time of the daily backup, ISO 8601 UTC (the policy repeats it every day).')
param backupStartTime string = '2024-01-01T02:00:00+00:00'

@description('Blob container for the backup extension (guide: aks-backups).')
param containerName string = 'aks-backups'

@description('Grant the vault identity its cluster-independent roles (Reader on the snapshot resource group; Storage Account Contributor and Storage Blob Data Contributor on the storage account). Off when the service assigns them.')
param grantVaultRoles bool = true

@description('Tags for every resource.')
param tags object = {}

resource mainGroup 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: 'rg-${prefix}'
  location: location
  tags: tags
}

// Disk snapshots of persistent volumes land here (guide phase 1, gotcha 4).
resource snapshotGroup 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: 'rg-${prefix}-snapshots'
  location: location
  tags: tags
}

module backup 'backup.bicep' = {
  name: 'backup-pilot-baseline'
  scope: mainGroup
  params: {
    location: location
    storageSku: storageSku
    vaultRedundancy: vaultRedundancy
    softDelete: softDelete
    softDeleteRetentionDays: softDeleteRetentionDays
    retention: retention
    backupStartTime: backupStartTime
    containerName: containerName
    grantVaultRoles: grantVaultRoles
    tags: tags
  }
}

module snapshotReader 'snapshot-reader.bicep' = if (grantVaultRoles) {
  name: 'backup-pilot-baseline-snapshot-reader'
  scope: snapshotGroup
  params: {
    vaultPrincipalId: backup.outputs.vaultPrincipalId
  }
}

@description('Main resource group.')
output mainResourceGroup string = mainGroup.name

@description('Snapshot resource group id (backup instances use it as their operational-store resource group).')
output snapshotResourceGroupId string = snapshotGroup.id

@description('Backup storage account id.')
output storageAccountId string = backup.outputs.storageAccountId

@description('Backup vault id.')
output vaultId string = backup.outputs.vaultId

@description('Backup policy id.')
output policyId string = backup.outputs.policyId

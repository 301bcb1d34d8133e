// Backup resources in the main resource group (guide phase 1, step 3): the storage account and
// container the backup extension writes to, the backup vault and its daily policy, and the
// vault identity's roles on the storage account (guide phase 2, step 5). Deployed by main.bicep.

@description('Region.')
param location string

@description('Backup storage replication.')
param storageSku string

@description('Vault storage redundancy.')
param vaultRedundancy string

@description('Vault soft delete: Off or On.')
param softDelete string

@description('Soft delete retention in days.')
param softDeleteRetentionDays int

@description('Operational-tier retention, ISO 8601 duration.')
param retention string

@description('Start of the daily schedule, ISO 8601 UTC.')
param backupStartTime string

@description('Blob container name.')
param containerName string

@description('Grant the vault identity its roles on the storage account.')
param grantVaultRoles bool

@description('Tags.')
param tags object

var suffix = uniqueString(resourceGroup().id)
var storageAccountContributor = '17d1049b-9a84-46fb-8f53-869881c3d3ab'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource storage 'Microsoft.Storage/storageAccounts@2023-01-01' = {
  // checkov:skip=CKV_AZURE_35:The backup extension in each cluster writes over the public endpoint unless the cluster has a private endpoint to this account; access is Entra-only (shared keys off, useAAD). Add a private endpoint and deny by default where clusters are private.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the extension reaches this account over its public endpoint; shared keys are off.
  // checkov:skip=CKV_AZURE_206:Replication is the storageSku parameter: Standard_LRS for a PoC and Standard_GRS for production, as in the guide's cost table (poc/production parameter files).
  // checkov:skip=CKV_AZURE_43:The name is 'stbk' plus uniqueString(): 17 lowercase letters and digits, which checkov cannot evaluate.
  name: take('stbk${suffix}', 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    // The extension authenticates with its identity (useAAD=true), so keys stay off.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-01-01' = {
  parent: blobs
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

resource vault 'Microsoft.DataProtection/backupVaults@2023-11-01' = {
  name: 'bv-${suffix}'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    storageSettings: [
      {
        datastoreType: 'VaultStore'
        type: vaultRedundancy
      }
    ]
    securitySettings: {
      softDeleteSettings: {
        state: softDelete
        retentionDurationInDays: softDeleteRetentionDays
      }
    }
  }
}

resource policy 'Microsoft.DataProtection/backupVaults/backupPolicies@2023-11-01' = {
  parent: vault
  name: 'aks-daily'
  properties: {
    objectType: 'BackupPolicy'
    datasourceTypes: [
      'Microsoft.ContainerService/managedClusters'
    ]
    policyRules: [
      {
        objectType: 'AzureRetentionRule'
        name: 'Default'
        isDefault: true
        lifecycles: [
          {
            deleteAfter: {
              objectType: 'AbsoluteDeleteOption'
              duration: retention
            }
            sourceDataStore: {
              objectType: 'DataStoreInfoBase'
              dataStoreType: 'OperationalStore'
            }
            targetDataStoreCopySettings: []
          }
        ]
      }
      {
        objectType: 'AzureBackupRule'
        name: 'BackupDaily'
        backupParameters: {
          objectType: 'AzureBackupParams'
          backupType: 'Incremental'
        }
        dataStore: {
          objectType: 'DataStoreInfoBase'
          dataStoreType: 'OperationalStore'
        }
        trigger: {
          objectType: 'ScheduleBasedTriggerContext'
          schedule: {
            repeatingTimeIntervals: [
              'R/${backupStartTime}/P1D'
            ]
            timeZone: 'Coordinated Universal Time'
          }
          taggingCriteria: [
            {
              isDefault: true
              taggingPriority: 99
              tagInfo: {
                tagName: 'Default'
              }
            }
          ]
        }
      }
    ]
  }
}

resource vaultStorageContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantVaultRoles) {
  name: guid(storage.id, vault.id, storageAccountContributor)
  scope: storage
  properties: {
    description: 'Backup vault manages the backup storage account'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageAccountContributor)
    principalId: vault.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantVaultRoles) {
  name: guid(storage.id, vault.id, storageBlobDataContributor)
  scope: storage
  properties: {
    description: 'Backup vault reads and writes backup blobs'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: vault.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Storage account id.')
output storageAccountId string = storage.id

@description('Vault id.')
output vaultId string = vault.id

@description('Vault identity principal id.')
output vaultPrincipalId string = vault.identity.principalId

@description('Policy id.')
output policyId string = policy.id

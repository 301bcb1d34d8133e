// The backup-pilot service in its own resource group: a user-assigned identity, the Functions
// host storage, Application Insights, the Service Bus namespace and queues (servicebus.bicep)
// and a Linux Flex Consumption function app running the Rust custom handler.
// Deploy: az deployment group create -g <rg> -f infra/service/main.bicep (see infra/README.md).
// Every API version here is listed in infra/README.md; the guide's five are checked by
// tests/infra_api_versions.rs.

targetScope = 'resourceGroup'

@description('Azure region for every resource (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('Short name used in resource names.')
@minLength(3)
@maxLength(16)
param namePrefix string = 'backup-pilot'

@description('Environment label, e.g. poc or production; tags and OTEL resource attributes.')
param environmentName string = 'poc'

@description('Tags for every resource.')
param tags object = {}

@description('NCRONTAB (6 fields, UTC: Flex has no WEBSITE_TIME_ZONE) for the restore-drills timer.')
param drillSchedule string = '0 0 3 * * 0'
@description('Fleet scan and drift sweep (6-field NCRONTAB, UTC): two Resource Graph queries per sweep.')
param scanSchedule string = '0 15 * * * *'

@description('OTLP/HTTP endpoint the binary exports traces and metrics to (e.g. an OpenTelemetry Collector with the azuremonitor exporter). Empty: no OTLP export; the host still logs to Application Insights.')
param otlpEndpoint string = ''

@description('Extra OTLP headers (key=value,...), e.g. a collector token. Never commit a value; pass it on the command line.')
@secure()
param otlpHeaders string = ''

@description('Azure Resource Manager URL for the binary. Empty: the binary default (public cloud).')
param armUrl string = ''

@description('More app settings (name: value). Later features add theirs here or in appSettings below.')
param extraAppSettings object = {}

@description('Flex Consumption instance memory in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on Flex Consumption instances (40 is the lowest the plan allows).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Spread the Flex Consumption plan across availability zones (only in regions that support it).')
param zoneRedundant bool = false

@description('Replication of the Functions host storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
])
param hostStorageSku string = 'Standard_LRS'

@description('Days Log Analytics keeps the service telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Days every version of a restore or drill evidence report stays immutable (WORM) in the reports container.')
@minValue(1)
@maxValue(146000)
param evidenceRetentionDays int = 365

var suffix = uniqueString(resourceGroup().id)
var allTags = union(tags, {
  application: 'aks-backup-pilot'
  environment: environmentName
})
var identityName = '${namePrefix}-id-${suffix}'
var storageName = take('stbp${suffix}', 24)
var appName = '${namePrefix}-func-${suffix}'
var planName = '${namePrefix}-plan-${suffix}'
var packageContainerName = 'app-package'
var eventDeadLetterContainerName = 'event-deadletters'
// BACKUP_PILOT_REPORT_CONTAINER's default: restore and drill evidence reports.
var reportContainerName = 'backup-pilot-reports'

// Built-in role definition GUIDs (identical in every public-cloud tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: allTags
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-log-${suffix}'
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-appi-${suffix}'
  location: location
  tags: allTags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Ingestion only with an Entra token (the identity below has Monitoring Metrics Publisher),
    // so the connection string in the app settings is not a credential.
    DisableLocalAuth: true
  }
}

// Host storage: function keys, timer leases and the deployment package. Identity only.
resource hostStorage 'Microsoft.Storage/storageAccounts@2023-01-01' = {
  // checkov:skip=CKV_AZURE_35:A Flex app without VNet integration reaches its host storage over the public endpoint; access is Entra-only (shared keys off). Add VNet integration and a private endpoint to close it.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the public endpoint is how a Flex app without VNet integration reaches its host storage; shared keys are off.
  // checkov:skip=CKV_AZURE_206:Host storage holds leases, function keys and the deployment zip, all recreated by a deploy; hostStorageSku selects ZRS or GRS, LRS is the low-cost default.
  // checkov:skip=CKV_AZURE_43:The name is 'stbp' plus uniqueString(): 17 lowercase letters and digits, which checkov cannot evaluate.
  name: storageName
  location: location
  tags: allTags
  kind: 'StorageV2'
  sku: {
    name: hostStorageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
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
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource hostBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-01-01' = {
  parent: hostStorage
  name: 'default'
  properties: {
    // Version-level immutability of the reports container needs blob versioning.
    isVersioningEnabled: true
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

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-01-01' = {
  parent: hostBlobs
  name: packageContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Event Grid dead-letters cluster events it could not deliver to Service Bus here
// (target/main.bicep grants each system topic write access to this container only).
resource eventDeadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-01-01' = {
  parent: hostBlobs
  name: eventDeadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Evidence reports: version-level immutability with a default time-based retention policy, so
// no version of a report can be changed or deleted before evidenceRetentionDays pass (a
// rewrite makes a new version; the old one stays). Each report also carries a hash chain that
// `backup-pilot verify-evidence` checks.
resource reportContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-01-01' = {
  parent: hostBlobs
  name: reportContainerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: {
      enabled: true
    }
  }
}

resource reportRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-01-01' = {
  parent: reportContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: evidenceRetentionDays
    allowProtectedAppendWrites: false
  }
}

module bus 'servicebus.bicep' = {
  name: 'backup-pilot-servicebus'
  params: {
    location: location
    namespaceName: '${namePrefix}-sb-${suffix}'
    tags: allTags
    principalId: identity.properties.principalId
  }
}

resource hostStorageOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, storageBlobDataOwner)
  scope: hostStorage
  properties: {
    description: 'backup-pilot: Functions host storage (keys, timer leases, deployment package)'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    description: 'backup-pilot: Entra-authenticated telemetry ingestion'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is the zoneRedundant parameter: it is available only in some regions, so it is off by default.
  name: planName
  location: location
  tags: allTags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

// App settings, one list per concern: a later feature adds a line to its list (or passes
// extraAppSettings). On Flex the worker runtime is functionAppConfig.runtime (custom), not
// FUNCTIONS_WORKER_RUNTIME, which the plan rejects.
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: hostStorage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.properties.clientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  }
]
var serviceBusSettings = [
  {
    name: 'ServiceBusConnection__fullyQualifiedNamespace'
    value: bus.outputs.fullyQualifiedNamespace
  }
  {
    name: 'ServiceBusConnection__credential'
    value: 'managedidentity'
  }
  {
    name: 'ServiceBusConnection__clientId'
    value: identity.properties.clientId
  }
]
var identitySettings = [
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  {
    name: 'AZURE_CREDENTIAL'
    value: 'managed-identity'
  }
]
var serviceSettings = concat([
  {
    name: 'BACKUP_PILOT_DRILL_SCHEDULE'
    value: drillSchedule
  }
  {
    name: 'BACKUP_PILOT_SCAN_SCHEDULE'
    value: scanSchedule
  }
], empty(armUrl) ? [] : [
  {
    name: 'BACKUP_PILOT_ARM_URL'
    value: armUrl
  }
])
var telemetrySettings = concat([
  {
    name: 'OTEL_SERVICE_NAME'
    value: 'backup-pilot'
  }
  {
    name: 'OTEL_RESOURCE_ATTRIBUTES'
    value: 'deployment.environment=${environmentName},service.namespace=aks-backup'
  }
  {
    name: 'OTEL_EXPORTER_OTLP_PROTOCOL'
    value: 'http/protobuf'
  }
], empty(otlpEndpoint) ? [] : [
  {
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT'
    value: otlpEndpoint
  }
], empty(otlpHeaders) ? [] : [
  {
    name: 'OTEL_EXPORTER_OTLP_HEADERS'
    value: otlpHeaders
  }
])
var extraSettings = [for setting in items(extraAppSettings): {
  name: setting.key
  value: setting.value
}]
var appSettings = concat(hostSettings, serviceBusSettings, identitySettings, serviceSettings, telemetrySettings, extraSettings)

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Public network access stays on: without VNet integration the platform and the status endpoint need it; the status function requires a function key.
  // checkov:skip=CKV_AZURE_17:Client certificates are not used: the status function authenticates callers with function keys over HTTPS, the other functions are Service Bus and timer triggers.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero by design; a minimum instance count means paid always-ready instances, a cost choice left to the operator.
  // checkov:skip=CKV_AZURE_213:A health-check probe calls without a function key and the only HTTP function (status) requires one; Flex replaces failed instances itself.
  name: appName
  location: location
  tags: allTags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${packageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  dependsOn: [
    hostStorageOwner
    telemetryPublisher
    packageContainer
  ]
}

@description('Function app name (deploy.sh code -a).')
output functionAppName string = app.name

@description('Principal (object) id of the service identity: target/main.bicep grants it its roles.')
output servicePrincipalId string = identity.properties.principalId

@description('Client id of the service identity (AZURE_CLIENT_ID).')
output serviceClientId string = identity.properties.clientId

@description('Resource id of the cluster-events queue, the Event Grid destination.')
output clusterEventsQueueId string = bus.outputs.clusterEventsQueueId

@description('Resource id of the storage account that holds undeliverable Event Grid events.')
output eventDeadLetterStorageId string = hostStorage.id

@description('Blob container for undeliverable Event Grid events.')
output eventDeadLetterContainer string = eventDeadLetterContainerName

// The Service Bus namespace and the service's five queues, with the service identity's data
// roles: Receiver on each queue a function triggers on, Sender on the namespace (the service
// sends to workflow, dead-letters and its own retries). Entra-only: shared access keys are off.
// Queue settings are explained in infra/README.md ("Queues").

@description('Azure region.')
param location string

@description('Namespace name (6-50 characters, globally unique).')
param namespaceName string

@description('Tags for every resource.')
param tags object

@description('Principal (object) id of the service identity.')
param principalId string

// Lock held by one delivery. With host.json maxAutoLockRenewalDuration 00:10:00 the host renews
// it, so a message stays locked for the whole functionTimeout (00:10:00) of one invocation.
var lockDuration = 'PT5M'

// Undelivered messages wait a week before they expire into the dead-letter subqueue.
var messageTimeToLive = 'P7D'

// Duplicate detection must outlive every resend of one message: maxDeliveryCount (5) times
// functionTimeout (10 min) is 50 minutes, so an hour.
var duplicateWindow = 'PT1H'

var queues = [
  {
    // Event Grid delivers one cluster event per message. Intake is cheap and idempotent, so
    // ten deliveries ride out a Service Bus or ARM outage of several minutes before the
    // message is parked in the dead-letter subqueue.
    name: 'cluster-events'
    maxDeliveryCount: 10
    requiresDuplicateDetection: false
    ttl: messageTimeToLive
  }
  {
    // One step per message. Step retries are new scheduled messages (attempt+1, a new
    // MessageId), so the broker only redelivers after a crash or timeout: five of those on one
    // step is a poison message. MessageIds are deterministic, so duplicate detection drops the
    // resend of a step that crashed after sending its successor.
    name: 'workflow'
    maxDeliveryCount: 5
    requiresDuplicateDetection: true
    ttl: messageTimeToLive
  }
  {
    // Restore requests from people and tools; same reasoning as workflow, without duplicate
    // detection because senders choose their own MessageIds.
    name: 'restore-requests'
    maxDeliveryCount: 5
    requiresDuplicateDetection: false
    ttl: messageTimeToLive
  }
  {
    // The outcome of every restore and drill (verdict, reasons, report location), for whoever
    // asked; no function reads it. Duplicate detection drops the resend of a result whose
    // step crashed after sending it (the MessageId is the workflow's).
    name: 'restore-results'
    maxDeliveryCount: 10
    requiresDuplicateDetection: true
    ttl: 'P14D'
  }
  {
    // Messages the service could not read, copied with their reason. No function reads it;
    // people and tools do, so it keeps messages for two weeks.
    name: 'dead-letters'
    maxDeliveryCount: 10
    requiresDuplicateDetection: false
    ttl: 'P14D'
  }
]

// The queues a function triggers on (functions/*/function.json).
var triggerQueues = [
  'cluster-events'
  'workflow'
  'restore-requests'
]

var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    // Standard: duplicate detection and scheduled messages; Basic has neither.
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for q in queues: {
  parent: namespace
  name: q.name
  properties: {
    lockDuration: lockDuration
    maxDeliveryCount: q.maxDeliveryCount
    defaultMessageTimeToLive: q.ttl
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: q.requiresDuplicateDetection
    duplicateDetectionHistoryTimeWindow: q.requiresDuplicateDetection ? duplicateWindow : null
    requiresSession: false
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}]

resource triggerQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = [for name in triggerQueues: {
  parent: namespace
  name: name
}]

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in triggerQueues: {
  name: guid(namespace.id, name, principalId, serviceBusDataReceiver)
  scope: triggerQueue[i]
  properties: {
    description: 'backup-pilot: the ${name} trigger receives and completes messages'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    queue
  ]
}]

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, serviceBusDataSender)
  scope: namespace
  properties: {
    description: 'backup-pilot: sends workflow steps, scheduled retries and dead-letter copies'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Host name of the namespace, for ServiceBusConnection__fullyQualifiedNamespace.')
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')

@description('Resource id of the cluster-events queue.')
output clusterEventsQueueId string = queue[0].id

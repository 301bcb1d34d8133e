// Lets one Event Grid system topic identity send to the service's cluster-events queue, and
// nothing else. Deployed into the service's resource group by events.bicep.

@description('Service Bus namespace name.')
param namespaceName string

@description('Queue name (cluster-events).')
param queueName string

@description('Principal id of the system topic identity.')
param principalId string

var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: namespaceName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: namespace
  name: queueName
}

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, serviceBusDataSender)
  scope: queue
  properties: {
    description: 'backup-pilot: Event Grid delivers AKS cluster events to ${queueName}'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

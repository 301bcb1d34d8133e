// The Event Grid system topic of one target subscription and its filtered event subscription:
// successful writes and deletes of managedClusters go to the service's cluster-events queue,
// delivered with the topic's own identity (no keys); undeliverable events are dead-lettered to a
// blob container in the service's storage account. Deployed by target/main.bicep.

@description('System topic name.')
param systemTopicName string

@description('Resource id of the cluster-events queue (any subscription).')
param clusterEventsQueueId string

@description('Resource id of the storage account for undeliverable events.')
param eventDeadLetterStorageId string

@description('Blob container for undeliverable events.')
param eventDeadLetterContainer string

@description('Tags for the topic.')
param tags object

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  // Subscription events are global.
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

// Resource ids: /subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}/...
module queueSender 'queue-sender.bicep' = {
  name: 'backup-pilot-events-sender-${uniqueString(subscription().id)}'
  scope: resourceGroup(split(clusterEventsQueueId, '/')[2], split(clusterEventsQueueId, '/')[4])
  params: {
    namespaceName: split(clusterEventsQueueId, '/')[8]
    queueName: split(clusterEventsQueueId, '/')[10]
    principalId: topic.identity.principalId
  }
}

module deadLetterWriter 'deadletter-writer.bicep' = {
  name: 'backup-pilot-events-deadletter-${uniqueString(subscription().id)}'
  scope: resourceGroup(split(eventDeadLetterStorageId, '/')[2], split(eventDeadLetterStorageId, '/')[4])
  params: {
    storageAccountName: split(eventDeadLetterStorageId, '/')[8]
    containerName: eventDeadLetterContainer
    principalId: topic.identity.principalId
  }
}

resource clusterChanges 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'aks-cluster-changes'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
      ]
      // Event Grid string comparisons ignore case, so managedclusters matches too.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.ContainerService/managedClusters/write'
            'Microsoft.ContainerService/managedClusters/delete'
          ]
        }
      ]
    }
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'ServiceBusQueue'
        properties: {
          resourceId: clusterEventsQueueId
        }
      }
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: eventDeadLetterStorageId
          blobContainerName: eventDeadLetterContainer
        }
      }
    }
    // Event Grid's own retry: a day of attempts, then the dead-letter container.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
  dependsOn: [
    queueSender
    deadLetterWriter
  ]
}

@description('Principal id of the topic identity.')
output topicPrincipalId string = topic.identity.principalId

// The backup vault identity's Reader role on the snapshot resource group (guide phase 2,
// gotcha 4: otherwise UserErrorMissingMSIPermissionsOnSnapshotResourceGroup).

@description('Principal id of the backup vault identity.')
param vaultPrincipalId string

var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource vaultReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, vaultPrincipalId, reader)
  properties: {
    description: 'Backup vault reads the snapshot resource group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: vaultPrincipalId
    principalType: 'ServicePrincipal'
  }
}

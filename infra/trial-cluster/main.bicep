// A trial AKS cluster for trying the service end to end (guide phase 1, step 2): CSI disk
// driver and snapshot controller on (needed for persistent-volume backup), a system-assigned
// identity, a supported non-LTS Kubernetes version, and a node pool big enough for the backup
// extension (guide gotcha 2: two Standard_D2s_v3 nodes by default). Deploy it into the baseline's
// main resource group:
//   az deployment group create -g rg-<prefix> -f infra/trial-cluster/main.bicep \
//     -p infra/trial-cluster/poc.parameters.json -p kubernetesVersion=<az aks get-versions>

@description('Cluster name.')
@minLength(1)
@maxLength(63)
param clusterName string = 'aks-backup-trial'

@description('Region.')
param location string = resourceGroup().location

@description('Kubernetes version: a supported non-LTS version in the region (az aks get-versions -l <region>; 1.29 and 1.30 are LTS-only, guide gotcha 1).')
param kubernetesVersion string

@description('AKS pricing tier: Free (PoC) or Standard (production), per the guide\'s cost table.')
@allowed([
  'Free'
  'Standard'
])
param tier string = 'Free'

@description('System node pool size: the backup extension needs about 500m CPU beyond the system pods, so a single Standard_B2ms is not enough (guide gotcha 2).')
@minValue(2)
@maxValue(10)
param nodeCount int = 2

@description('Node VM size (Standard_D2s_v3 per guide gotcha 2).')
param nodeVmSize string = 'Standard_D2s_v3'

@description('Public IP ranges (CIDR) allowed to reach the API server; empty allows any.')
param apiServerAuthorizedIpRanges array = []

@description('Tags.')
param tags object = {}

resource cluster 'Microsoft.ContainerService/managedClusters@2024-01-01' = {
  // checkov:skip=CKV_AZURE_141:Local accounts stay on so that listClusterUserCredential returns a certificate kubeconfig the service can use; a cluster with Entra ID and Azure RBAC for Kubernetes also needs the Kubernetes role described in infra/README.md (Permissions).
  // checkov:skip=CKV_AZURE_226:Ephemeral OS disks need a VM cache at least as large as the OS disk, which depends on nodeVmSize; managed OS disks work with every size a trial may pick.
  // checkov:skip=CKV_AZURE_8:The Kubernetes dashboard add-on no longer exists for supported Kubernetes versions, so it is never installed; the template does not name it.
  // checkov:skip=CKV_AZURE_227:Encryption at host needs the EncryptionAtHost subscription feature registered first; platform-managed disk encryption is on. Turn it on for production clusters.
  // checkov:skip=CKV_AZURE_172:No Secrets Store CSI driver is installed, so there are no secrets to rotate.
  // checkov:skip=CKV_AZURE_4:Container insights needs a Log Analytics workspace and is billed per GB; a trial does not need it (az aks enable-addons -a monitoring adds it).
  name: clusterName
  location: location
  tags: tags
  sku: {
    name: 'Base'
    tier: tier
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    kubernetesVersion: kubernetesVersion
    dnsPrefix: clusterName
    enableRBAC: true
    apiServerAccessProfile: {
      authorizedIPRanges: apiServerAuthorizedIpRanges
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        count: nodeCount
        vmSize: nodeVmSize
        osType: 'Linux'
        osSKU: 'AzureLinux'
        type: 'VirtualMachineScaleSets'
        maxPods: 50
      }
    ]
    networkProfile: {
      networkPlugin: 'azure'
      networkPolicy: 'azure'
    }
    autoUpgradeProfile: {
      upgradeChannel: 'patch'
      nodeOSUpgradeChannel: 'NodeImage'
    }
    storageProfile: {
      // Both required for persistent-volume backup (guide phase 1).
      diskCSIDriver: {
        enabled: true
      }
      snapshotController: {
        enabled: true
      }
    }
  }
}

@description('Cluster resource id.')
output clusterId string = cluster.id

@description('Principal id of the cluster identity (needs Contributor on the snapshot resource group; the service assigns it).')
output clusterPrincipalId string = cluster.identity.principalId

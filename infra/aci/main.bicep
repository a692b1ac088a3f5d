// chatops-bot on Azure Container Instances: one container group running the bot.
//
// Deploy into a resource group that already holds the user-assigned identity
// (with AcrPull on the registry), see docs/azure.md, "Deploying, step by step":
//
//   az deployment group create -g chatops -f infra/aci/main.bicep \
//     -p image=myacr.azurecr.io/chatops-bot:0.1.0 registryLoginServer=myacr.azurecr.io \
//        identityName=chatops-bot discordToken=@token.txt
//
// main.json next to this file is the same template as ARM JSON (what
// `az bicep build --file main.bicep` produces); keep the two in step
// (tests/infra/test_infra.py compares them).

@description('Name of the container group; also the default DNS label.')
param name string = 'chatops-bot'

@description('Azure region of the container group.')
param location string = resourceGroup().location

@description('Image to run, e.g. myacr.azurecr.io/chatops-bot:0.1.0.')
param image string

@description('Login server of the Azure Container Registry the image comes from, e.g. myacr.azurecr.io.')
param registryLoginServer string

@description('Existing user-assigned managed identity in this resource group: pulls the image (AcrPull on the registry) and is the bot\'s Azure identity for !aci.')
param identityName string

@description('DNS label of the public IP (the group\'s FQDN is LABEL.REGION.azurecontainer.io).')
param dnsNameLabel string = name

@description('CPU cores for the bot container.')
param cpu string = '0.5'

@description('Memory in GiB for the bot container.')
param memoryInGb string = '1.0'

@description('Port of the health server (/healthz, /readyz) inside the container.')
param healthPort int = 8080

@description('OTEL_SERVICE_NAME: the service name on the bot\'s spans (the Honeycomb dataset).')
param otelServiceName string = 'chatops-bot'

@description('DEPLOYMENT_ENVIRONMENT: the deployment.environment resource attribute.')
param deploymentEnvironment string = 'production'

@description('Give the identity a role that manages container groups in this resource group (for !aci).')
param grantContainerGroupRole bool = true

@secure()
@description('The Discord bot token.')
param discordToken string

@secure()
@description('Honeycomb ingest key (HONEYCOMB_API_KEY); empty: no Honeycomb export.')
param honeycombApiKey string = ''

@secure()
@description('Honeycomb configuration key for deployment markers (HONEYCOMB_MARKER_KEY); empty: none.')
param honeycombMarkerKey string = ''

var containerName = 'bot'

var honeycombApiKeyEnv = empty(honeycombApiKey) ? [] : [
  {
    name: 'HONEYCOMB_API_KEY'
    secureValue: honeycombApiKey
  }
]

var honeycombMarkerKeyEnv = empty(honeycombMarkerKey) ? [] : [
  {
    name: 'HONEYCOMB_MARKER_KEY'
    secureValue: honeycombMarkerKey
  }
]

// Least privilege for !aci: container groups in this resource group, nothing else
// (in particular not Microsoft.ManagedIdentity/userAssignedIdentities/assign/action,
// so the bot cannot start a group under a more privileged identity).
var containerGroupActions = [
  'Microsoft.ContainerInstance/containerGroups/*'
  'Microsoft.Resources/subscriptions/resourceGroups/read'
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource containerGroupRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (grantContainerGroupRole) {
  name: guid(resourceGroup().id, 'chatops-container-group-operator')
  properties: {
    roleName: 'chatops container group operator (${resourceGroup().name})'
    description: 'Read, start, stop, restart and update the container groups of one resource group.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: containerGroupActions
        notActions: []
      }
    ]
  }
}

resource containerGroupRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantContainerGroupRole) {
  name: guid(resourceGroup().id, identity.id, 'chatops-container-group-operator')
  properties: {
    roleDefinitionId: containerGroupRole.id
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource containerGroup 'Microsoft.ContainerInstance/containerGroups@2023-05-01' = {
  name: name
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    osType: 'Linux'
    sku: 'Standard'
    restartPolicy: 'Always'
    imageRegistryCredentials: [
      {
        server: registryLoginServer
        identity: identity.id
      }
    ]
    ipAddress: {
      type: 'Public'
      dnsNameLabel: dnsNameLabel
      ports: [
        {
          port: healthPort
          protocol: 'TCP'
        }
      ]
    }
    containers: [
      {
        name: containerName
        properties: {
          image: image
          ports: [
            {
              port: healthPort
              protocol: 'TCP'
            }
          ]
          resources: {
            requests: {
              cpu: json(cpu)
              memoryInGB: json(memoryInGb)
            }
          }
          environmentVariables: concat([
            {
              name: 'DISCORD_TOKEN'
              secureValue: discordToken
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identity.properties.clientId
            }
            {
              name: 'AZURE_SUBSCRIPTION_ID'
              value: subscription().subscriptionId
            }
            {
              name: 'AZURE_RESOURCE_GROUP'
              value: resourceGroup().name
            }
            {
              name: 'HEALTH_PORT'
              value: string(healthPort)
            }
            {
              name: 'OTEL_SERVICE_NAME'
              value: otelServiceName
            }
            {
              name: 'DEPLOYMENT_ENVIRONMENT'
              value: deploymentEnvironment
            }
            {
              name: 'SPAN_STORE'
              value: 'off'
            }
          ], honeycombApiKeyEnv, honeycombMarkerKeyEnv)
          livenessProbe: {
            httpGet: {
              path: '/healthz'
              port: healthPort
              scheme: 'http'
            }
            initialDelaySeconds: 20
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          }
          readinessProbe: {
            httpGet: {
              path: '/readyz'
              port: healthPort
              scheme: 'http'
            }
            initialDelaySeconds: 5
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          }
        }
      }
    ]
  }
}

@description('Principal (object) id of the bot\'s identity.')
output identityPrincipalId string = identity.properties.principalId

@description('Client id of the bot\'s identity (AZURE_CLIENT_ID in the container).')
output identityClientId string = identity.properties.clientId

@description('Public FQDN of the container group (health server on healthPort).')
output fqdn string = containerGroup.properties.ipAddress.fqdn

@description('Name of the container group (chatops deploy --group).')
output containerGroupName string = containerGroup.name

-- Argo CD health check for gamevm.dev/GameVM (see docs/argocd-health.md).
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(fallback)
  local ready = condition("Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.message
  end
  if obj.status ~= nil and obj.status.message ~= nil and obj.status.message ~= "" then
    return obj.status.message
  end
  return fallback
end

local annotations = obj.metadata.annotations or {}
if annotations["gamevm.dev/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation paused (gamevm.dev/paused=true)"
  return hs
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the GameVM"
  return hs
end

local phase = obj.status.phase
if phase == "error" then
  hs.status = "Degraded"
  hs.message = describe("Provisioning failed")
  return hs
end

-- A spec change the operator has not acted on yet: whatever Ready says is stale.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe("Running")
  return hs
end

if phase == "stopped" then
  hs.status = "Suspended"
  if obj.status.stopReason ~= nil and obj.status.stopReason ~= "" then
    hs.message = "Stopped: " .. obj.status.stopReason
  else
    hs.message = describe("Stopped")
  end
  return hs
end

if phase == "terminated" then
  hs.status = "Degraded"
  hs.message = describe("The instance was terminated")
  return hs
end

-- creating, configuring, or running while Wolf is not answering yet.
hs.status = "Progressing"
hs.message = describe("Phase " .. phase)
return hs

// The machine description is shared with loadtest, which ships (the bench does not).
export { machineInfo, type MachineInfo } from '../runtime/machine.js';

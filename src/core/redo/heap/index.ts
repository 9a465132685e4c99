/**
 * The heap access method's redo: importing this registers the Heap and Heap2 resource managers
 * (heap.ts, heap2.ts). Also the public surface other modules use: visibility-map page helpers (the storage
 * TRUNCATE redo edits the last VM page) and the list of VM pages heap records change implicitly.
 */
import './heap.js'
import './heap2.js'

export {
  HEAPBLOCKS_PER_PAGE,
  VISIBILITYMAP_ALL_FROZEN,
  VISIBILITYMAP_ALL_VISIBLE,
  VISIBILITYMAP_VALID_BITS,
  heapBlkToMapBlock,
  heapBlkToMapByte,
  heapBlkToMapOffset,
  vmClear,
  vmGetStatus,
  vmInitIfNew,
  vmSet,
  vmTruncatePage,
  vmTruncation,
  type VmTruncation,
} from './visibilitymap.js'
export { vmClears, vmImplicitTargets, type VmClear } from './vm-clear.js'

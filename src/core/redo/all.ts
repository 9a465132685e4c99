/**
 * Imports every resource manager's redo module for its registration side effect (registerRmgrRedo).
 * One line per module; a resource manager missing here has no redo and its records are unsupported.
 */
import './xlog.js'
import './heap/index.js'
import './nbtree/index.js'
import './seq.js'
import './slru/clog.js'
import './slru/multixact.js'
import './smgr.js'

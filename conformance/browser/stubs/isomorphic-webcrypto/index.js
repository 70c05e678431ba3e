"use strict";
// Node >= 20 has WebCrypto built in; this is what isomorphic-webcrypto
// itself hands out on Node.
module.exports = globalThis.crypto;
module.exports.default = globalThis.crypto;

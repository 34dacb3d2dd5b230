/** Byte units, in the binary sense memory and file sizes are reported in. */
export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

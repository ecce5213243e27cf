package dev.sfmobile.core

/**
 * Portable seeded Gaussian noise, bit for bit what sfmobile/noise.py gives (docs/noise.md):
 * Philox4x32-10 words, Box-Muller in double, one rounding to float32.
 *
 * Seeds are unsigned 64-bit integers, 0 <= seed < 2^64 (Python rejects anything else). Kotlin
 * takes a [ULong], or a [Long] read as its unsigned bit pattern: `-1L` is seed 2^64 - 1.
 */
object Noise {
    private const val M0 = 0xD2511F53L
    private const val M1 = 0xCD9E8D57L
    private const val W0 = 0x9E3779B9L
    private const val W1 = 0xBB67AE85L
    private const val ROUNDS = 10
    private const val MASK32 = 0xFFFFFFFFL
    private const val TWO_POW_MINUS_32 = 2.3283064365386963e-10 // 2^-32, exact
    private const val TWO_PI = 6.283185307179586 // 2.0 * Math.PI, exact doubling

    /** Standard normal float32 noise of `shape` for `seed`; value k is z_(k mod 4) of block k div 4. */
    fun gaussian(
        seed: ULong,
        shape: IntArray,
    ): FloatTensor {
        val count = elementCount(shape)
        val key = seedToKey(seed)
        val data = FloatArray(count)
        val block = LongArray(4)
        val normals = DoubleArray(4)
        var k = 0
        var j = 0L
        while (k < count) {
            philox(longArrayOf(j and MASK32, j ushr 32, 0L, 0L), key, block)
            wordsToNormals(block, normals)
            for (i in 0 until 4) {
                if (k + i < count) data[k + i] = normals[i].toFloat()
            }
            k += 4
            j++
        }
        return FloatTensor(shape.copyOf(), data)
    }

    /** [gaussian] with the seed's unsigned bit pattern in a Long (`-1L` = 2^64 - 1). */
    fun gaussian(
        seed: Long,
        shape: IntArray,
    ): FloatTensor = gaussian(seed.toULong(), shape)

    /** The Philox key (low 32 bits, high 32 bits) of a seed. */
    fun seedToKey(seed: ULong): LongArray = longArrayOf(seed.toLong() and MASK32, seed.toLong() ushr 32)

    /**
     * Philox4x32-10 of one counter (four uint32 held in Longs) under `key` (two uint32); the four
     * output words go into `out`. The 32x32 -> 64-bit products fit a Long as unsigned bits.
     */
    fun philox(
        counter: LongArray,
        key: LongArray,
        out: LongArray = LongArray(4),
    ): LongArray {
        var x0 = counter[0]
        var x1 = counter[1]
        var x2 = counter[2]
        var x3 = counter[3]
        var k0 = key[0]
        var k1 = key[1]
        for (round in 0 until ROUNDS) {
            if (round > 0) {
                k0 = (k0 + W0) and MASK32
                k1 = (k1 + W1) and MASK32
            }
            val product0 = x0 * M0 // < 2^64: exact as unsigned bits
            val product1 = x2 * M1
            val hi0 = product0 ushr 32
            val lo0 = product0 and MASK32
            val hi1 = product1 ushr 32
            val lo1 = product1 and MASK32
            x0 = hi1 xor x1 xor k0
            x1 = lo1
            x2 = hi0 xor x3 xor k1
            x3 = lo0
        }
        out[0] = x0
        out[1] = x1
        out[2] = x2
        out[3] = x3
        return out
    }

    private fun wordsToNormals(
        words: LongArray,
        out: DoubleArray,
    ) {
        for (first in intArrayOf(0, 2)) {
            val u0 = (words[first].toDouble() + 0.5) * TWO_POW_MINUS_32
            val u1 = (words[first + 1].toDouble() + 0.5) * TWO_POW_MINUS_32
            val radius = StrictMath.sqrt(-2.0 * StrictMath.log(u0))
            val angle = TWO_PI * u1
            out[first] = radius * StrictMath.cos(angle)
            out[first + 1] = radius * StrictMath.sin(angle)
        }
    }
}

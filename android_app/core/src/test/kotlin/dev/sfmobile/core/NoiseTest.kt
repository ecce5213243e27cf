package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.test.assertFailsWith

class NoiseTest {
    private val index = Golden.json("noise/index.json")

    @Test
    fun `every golden case is bit-identical to Python`() {
        val cases = index.getAsJsonArray("cases")
        assertEquals(3, cases.size())
        for (case in cases.map { it.asJsonObject }) {
            val seed = case.get("seed").asString.toULong()
            val shape = case.getAsJsonArray("shape").map { it.asInt }.toIntArray()
            val expected = Golden.floats(File(Golden.dir, "noise/" + case.get("file").asString))
            val actual = Noise.gaussian(seed, shape)
            assertArrayEquals(shape, actual.shape)
            assertEquals(expected.size, actual.data.size)
            for (i in expected.indices) {
                assertEquals(expected[i].toRawBits(), actual.data[i].toRawBits(), "seed $seed value $i")
            }
        }
    }

    @Test
    fun `block 0 words match the golden index`() {
        for (case in index.getAsJsonArray("cases").map { it.asJsonObject }) {
            val key = Noise.seedToKey(case.get("seed").asString.toULong())
            val words = Noise.philox(longArrayOf(0, 0, 0, 0), key).map { "%08x".format(it) }
            assertEquals(case.getAsJsonArray("block0_words").map { it.asString }, words)
        }
    }

    @Test
    fun `philox matches Random123 known answers`() {
        fun run(
            counter: String,
            key: String,
        ) = Noise.philox(hex(counter), hex(key)).joinToString(" ") { "%08x".format(it) }
        assertEquals("6627e8d5 e169c58d bc57ac4c 9b00dbd8", run("00000000 00000000 00000000 00000000", "00000000 00000000"))
        assertEquals("408f276d 41c83b0e a20bc7c6 6d5451fd", run("ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff"))
        assertEquals("d16cfe09 94fdcceb 5001e420 24126ea1", run("243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0"))
    }

    @Test
    fun `a Long seed is read as its unsigned bits`() {
        val shape = intArrayOf(2, 3, 5)
        assertArrayEquals(Noise.gaussian(ULong.MAX_VALUE, shape).data, Noise.gaussian(-1L, shape).data)
    }

    @Test
    fun `a smaller tensor is a prefix of a larger one`() {
        val small = Noise.gaussian(7uL, intArrayOf(1, 3, 3)).data
        val large = Noise.gaussian(7uL, intArrayOf(4, 10)).data
        assertArrayEquals(small, large.copyOf(small.size))
    }

    @Test
    fun `bad shapes are refused naming the shape`() {
        val error = assertFailsWith<InputException> { Noise.gaussian(0uL, intArrayOf(1, 0)) }
        assertEquals(true, "shape" in error.message!!)
        assertFailsWith<InputException> { Noise.gaussian(0uL, intArrayOf()) }
        assertFailsWith<InputException> { Noise.gaussian(0uL, intArrayOf(65536, 65536)) }
    }

    private fun hex(words: String) = words.split(" ").map { it.toLong(16) }.toLongArray()
}

package dev.sfmobile.core

import com.google.gson.JsonParser
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.math.abs
import kotlin.test.assertFailsWith

/**
 * TiledDecode against sfmobile/tiled_decode.py's own answers (tests/golden/tiled_decode/, written
 * by `sfmobile golden`): tile placement, the choice of tile side, and whole blended images.
 */
class TiledDecodeTest {
    private val index = Golden.json("tiled_decode/index.json")

    /** The golden's stand-in tile decoder (sfmobile/golden/tiled_decode_vectors.py), in the same float32 order. */
    private fun standInDecoder(factor: Int): (FloatTensor) -> FloatTensor =
        { latents ->
            val (_, channels, tile, _) = latents.shape
            val side = tile * factor
            val out = FloatArray(3 * side * side)
            for (c in 0 until 3) {
                for (y in 0 until side) {
                    for (x in 0 until side) {
                        val value = latents.data[((c % channels) * tile + y / factor) * tile + x / factor]
                        out[(c * side + y) * side + x] = value * 0.5f + 0.01f * y.toFloat() + 0.02f * x.toFloat() + 0.1f * c.toFloat()
                    }
                }
            }
            FloatTensor(intArrayOf(1, 3, side, side), out)
        }

    @Test
    fun `tile starts match Python's tile_starts, ties rounded to even`() {
        val cases = JsonParser.parseString(File(Golden.dir, "tiled_decode/tile_starts.json").readText()).asJsonArray
        assertTrue(cases.size() > 500)
        for (case in cases.map { it.asJsonObject }) {
            val (size, tile, overlap) = listOf("size", "tile", "overlap").map { case.get(it).asInt }
            val expected = case.getAsJsonArray("starts").map { it.asInt }.toIntArray()
            assertArrayEquals(expected, TiledDecode.tileStarts(size, tile, overlap), "size $size tile $tile overlap $overlap")
        }
        assertArrayEquals(intArrayOf(0, 2, 5), TiledDecode.tileStarts(9, 4, 1)) // 2.5 -> 2
        assertArrayEquals(intArrayOf(0, 4, 7), TiledDecode.tileStarts(13, 6, 1)) // 3.5 -> 4
    }

    @Test
    fun `the tile side follows Python's tile_side for a bundle, refusing a tile request without a tile decoder`() {
        val cases = index.getAsJsonArray("tile_side").map { it.asJsonObject }
        assertEquals(21, cases.size)
        for (case in cases) {
            val decoderTile = case.get("decoder_tile").takeUnless { it.isJsonNull }?.asInt
            val (height, width) = case.getAsJsonArray("latent").map { it.asInt }
            val request = case.get("request").takeUnless { it.isJsonNull }?.asBoolean
            val expected = case.get("tile")
            val what = "tile $decoderTile latent ${height}x$width request $request"
            if (!expected.isJsonNull && expected.asString == "refused") {
                assertFailsWith<InputException>(what) { TiledDecode.tileSide(decoderTile, height, width, request) }
            } else {
                assertEquals(expected.takeUnless { it.isJsonNull }?.asInt, TiledDecode.tileSide(decoderTile, height, width, request), what)
            }
        }
    }

    @Test
    fun `blended images match Python's decode_tiled within 1e-6 for every golden case`() {
        val seed = index.getAsJsonObject("latents").get("noise_seed").asLong
        val cases = index.getAsJsonArray("blended").map { it.asJsonObject }
        assertEquals(6, cases.size)
        for (case in cases) {
            val name = case.get("name").asString
            val shape = case.getAsJsonArray("latent_shape").map { it.asInt }.toIntArray()
            val (tile, overlap, factor) = listOf("tile", "overlap", "factor").map { case.get(it).asInt }
            assertEquals(TiledDecode.defaultOverlap(tile), overlap, name)
            val rows = case.getAsJsonArray("row_starts").map { it.asInt }.toIntArray()
            assertArrayEquals(rows, TiledDecode.tileStarts(shape[2], tile, overlap), name)
            val image = TiledDecode.decode(Noise.gaussian(seed, shape), standInDecoder(factor), tile, overlap, factor)
            val expectedShape = case.getAsJsonArray("file_shape").map { it.asInt }.toIntArray()
            assertArrayEquals(expectedShape, image.shape, name)
            val golden = Golden.floats(File(Golden.dir, "tiled_decode/" + case.get("file").asString))
            assertEquals(golden.size, image.data.size, name)
            for (i in golden.indices) {
                val tolerance = 1e-6f * maxOf(1f, abs(golden[i]))
                assertTrue(abs(golden[i] - image.data[i]) <= tolerance, "$name value $i: ${image.data[i]} vs ${golden[i]}")
            }
        }
    }

    @Test
    fun `feather weights sum to one at every position and ramp only inside the image`() {
        for ((size, tile, ramp) in listOf(Triple(512, 320, 80), Triple(64, 32, 8), Triple(40, 12, 0), Triple(100, 100, 25))) {
            val starts = TiledDecode.tileStarts(size, tile, ramp)
            val weights = TiledDecode.axisWeights(starts, tile, size, ramp)
            val total = DoubleArray(size)
            for ((start, weight) in starts.zip(weights)) weight.forEachIndexed { i, w -> total[start + i] += w.toDouble() }
            for (p in 0 until size) assertEquals(1.0, total[p], 1e-6, "size $size tile $tile position $p")
            assertEquals(1f, weights.first()[0], "the first tile owns the image's first pixel")
            assertEquals(1f, weights.last()[tile - 1], "the last tile owns the image's last pixel")
        }
    }

    @Test
    fun `a tile decoder that answers the wrong shape is refused naming decoder_tile`() {
        val latents = Noise.gaussian(1, intArrayOf(1, 4, 8, 8))
        val error =
            assertFailsWith<EngineException> {
                TiledDecode.decode(latents, { FloatTensor(intArrayOf(1, 3, 16, 16), FloatArray(3 * 16 * 16)) }, 4, 1, 8)
            }
        assertTrue("decoder_tile returned shape [1, 3, 16, 16] for a 4x4 latent tile, expected [1, 3, 32, 32]" in error.message!!)
    }

    @Test
    fun `a tile larger than the latent or an overlap over half a tile is refused`() {
        assertTrue("tile side 9" in assertFailsWith<InputException> { TiledDecode.tileStarts(8, 9, 1) }.message!!)
        assertTrue("tile overlap 3" in assertFailsWith<InputException> { TiledDecode.tileStarts(8, 4, 3) }.message!!)
        assertFailsWith<InputException> { TiledDecode.tileStarts(8, 0, 0) }
    }
}

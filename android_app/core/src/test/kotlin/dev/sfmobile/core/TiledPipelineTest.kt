package dev.sfmobile.core

import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.ModelFiles
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.test.assertFailsWith

/**
 * When the Pipeline decodes in tiles, as Python's Pipeline(tile_decoder=...) does: whenever the
 * bundle has a `decoder_tile` (the corpus's valid-decoder-tile: 4x4 tiles of an 8x8 latent), never
 * with tileDecoder = false, and a tile request on a bundle without one is refused before any step.
 */
class TiledPipelineTest {
    private val withTile = Bundle.open(File(Golden.dir, "bundles/valid-decoder-tile")).manifest
    private val withoutTile = Bundle.open(File(Golden.dir, "bundles/valid")).manifest

    /** Zeros from the text encoder and UNet; decoders answer a pattern of their input and write down every call. */
    private class RecordingEngine : Engine {
        val calls = ArrayList<String>()
        val tiles = ArrayList<FloatTensor>()
        var whole: FloatTensor? = null

        override fun encodeText(tokenIds: IntTensor) = FloatTensor(intArrayOf(1, 77, 32), FloatArray(77 * 32))

        override fun predict(
            latents: FloatTensor,
            timestep: Float,
            text: FloatTensor,
            guidance: Float?,
        ) = FloatTensor(latents.shape, FloatArray(latents.data.size) { 0.1f })

        override fun decode(latents: FloatTensor): FloatTensor {
            calls += "decode ${latents.shape.contentToString()}"
            whole = latents
            return pattern(latents)
        }

        override fun decodeTile(latents: FloatTensor): FloatTensor {
            calls += "decode_tile ${latents.shape.contentToString()}"
            tiles += latents
            return pattern(latents)
        }

        /** [1, 3, 8t, 8u] whose pixel (c, y, x) is the latent under it plus its place in the tile. */
        fun pattern(latents: FloatTensor): FloatTensor {
            val (_, _, h, w) = latents.shape
            val data = FloatArray(3 * 64 * h * w)
            for (i in data.indices) {
                val x = i % (8 * w)
                val y = i / (8 * w) % (8 * h)
                data[i] = latents.data[(y / 8) * w + x / 8] + 0.01f * y - 0.01f * x
            }
            return FloatTensor(intArrayOf(1, 3, 8 * h, 8 * w), data)
        }

        override fun close() {}
    }

    private val request = GenerationRequest("a cat", steps = 2, guidance = 1f, seed = 5)

    @Test
    fun `a bundle with a tile decoder decodes in 3x3 overlapping tiles and blends them as TiledDecode does`() {
        val tiled = RecordingEngine()
        val generation = Pipeline(withTile, Tokenizer.default(), tiled).generate(request)
        assertEquals(List(9) { "decode_tile [1, 4, 4, 4]" }, tiled.calls)
        val whole = RecordingEngine()
        Pipeline(withTile, Tokenizer.default(), whole, tileDecoder = false).generate(request)
        assertEquals(listOf("decode [1, 4, 8, 8]"), whole.calls)
        val latents = whole.whole!!
        // Tiles at rows and columns 0, 2, 4 (tile_starts(8, 4, 1)), cut from the latent the whole decode got.
        val origins = listOf(0, 2, 4).flatMap { y -> listOf(0, 2, 4).map { x -> y to x } }
        for ((tile, origin) in tiled.tiles.zip(origins)) {
            val (y, x) = origin
            val expected = FloatArray(4 * 16) { k -> latents.data[((k / 16) * 8 + y + k / 4 % 4) * 8 + x + k % 4] }
            assertArrayEquals(expected, tile.data, "tile at $origin")
        }
        val blended = TiledDecode.decode(latents, whole::pattern, 4, 1, 8)
        assertArrayEquals(Pixels.toRgb(blended), generation.rgb)
    }

    @Test
    fun `a tiling pipeline never calls the whole decoder, which the engine did not load`() {
        // The engine ModelFiles.resolve builds for auto and on has no `decoder`: one that fails on decode().
        for (choice in listOf(null, true)) {
            val files = ModelFiles.resolve(withTile, Backend.ORT_CPU, choice)
            assertEquals(listOf("text_encoder", "unet", "decoder_tile"), files.keys.toList(), "choice $choice")
            val recording = RecordingEngine()
            val tilesOnly =
                object : Engine by recording {
                    override fun decode(latents: FloatTensor): FloatTensor = throw AssertionError("decode() called with tiling $choice")
                }
            val generation = Pipeline(withTile, Tokenizer.default(), tilesOnly, tileDecoder = choice).generate(request)
            assertEquals(List(9) { "decode_tile [1, 4, 4, 4]" }, recording.calls, "choice $choice")
            assertArrayEquals(Pipeline(withTile, Tokenizer.default(), RecordingEngine()).generate(request).rgb, generation.rgb)
        }
        val off = ModelFiles.resolve(withTile, Backend.ORT_CPU, false)
        assertEquals(listOf("text_encoder", "unet", "decoder"), off.keys.toList())
    }

    @Test
    fun `decoderComponent is the one decoder each choice runs, and the choices parse from auto on off`() {
        assertEquals("decoder_tile", TiledDecode.decoderComponent(withTile, null))
        assertEquals("decoder_tile", TiledDecode.decoderComponent(withTile, true))
        assertEquals("decoder", TiledDecode.decoderComponent(withTile, false))
        assertEquals("decoder", TiledDecode.decoderComponent(withoutTile, null))
        assertEquals("decoder", TiledDecode.decoderComponent(withoutTile, false))
        val refused = assertFailsWith<InputException> { TiledDecode.decoderComponent(withoutTile, true) }
        assertEquals(TiledDecode.NO_TILE_DECODER, refused.message)
        assertEquals(listOf(null, true, false), listOf("auto", "on", "off").map(TiledDecode::parseChoice))
        assertEquals(listOf("auto", "on", "off"), listOf(null, true, false).map(TiledDecode::choiceName))
        val bad = assertFailsWith<InputException> { TiledDecode.parseChoice("yes") }
        assertEquals("tile decoder choice must be one of [auto, on, off], got 'yes'", bad.message)
    }

    @Test
    fun `tileDecoder true on a bundle without a tile decoder is refused before any engine call`() {
        val engine = RecordingEngine()
        val error = assertFailsWith<InputException> { Pipeline(withoutTile, Tokenizer.default(), engine, tileDecoder = true) }
        assertEquals(TiledDecode.NO_TILE_DECODER, error.message)
        assertEquals(emptyList<String>(), engine.calls)
        Pipeline(withoutTile, Tokenizer.default(), engine).generate(request)
        assertEquals(listOf("decode [1, 4, 8, 8]"), engine.calls)
    }

    @Test
    fun `an engine without decodeTile fails naming the missing component`() {
        val textOnly =
            object : Engine by RecordingEngine() {
                override fun decodeTile(latents: FloatTensor): FloatTensor = super.decodeTile(latents)
            }
        val error = assertFailsWith<BundleException> { Pipeline(withTile, Tokenizer.default(), textOnly).generate(request) }
        assertEquals(TiledDecode.NO_TILE_DECODER, error.message)
    }
}

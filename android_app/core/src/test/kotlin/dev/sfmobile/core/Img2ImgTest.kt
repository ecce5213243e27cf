package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.test.assertFailsWith

/**
 * Image-to-image where the replay recording does not reach: the start step for other strengths,
 * refused requests, engines and bundles without an encoder. The recorded generation itself is
 * checked by ReplayTest's img2img case.
 */
class Img2ImgTest {
    private val withEncoder = Manifest.parse(File(Golden.dir, "replay/img2img/manifest.json").readText(), "img2img/manifest.json")
    private val withoutEncoder =
        Manifest.parse(File(Golden.dir, "replay/guidance-off/manifest.json").readText(), "guidance-off/manifest.json")
    private val grey = InitImage.Rgb(64, 64, ByteArray(64 * 64 * 3) { 127 })

    /** A text-to-image engine: no encodeImage, so the interface's default answers. Writes down every call. */
    private open class TextOnlyEngine : Engine {
        val calls = ArrayList<String>()

        override fun encodeText(tokenIds: IntTensor): FloatTensor {
            calls += "encode_text"
            return FloatTensor(intArrayOf(1, 77, 128), FloatArray(77 * 128))
        }

        override fun predict(
            latents: FloatTensor,
            timestep: Float,
            text: FloatTensor,
            guidance: Float?,
        ): FloatTensor {
            calls += "predict $timestep"
            return FloatTensor(latents.shape, FloatArray(latents.data.size))
        }

        override fun decode(latents: FloatTensor): FloatTensor {
            calls += "decode"
            return FloatTensor(intArrayOf(1, 3, 64, 64), FloatArray(3 * 64 * 64))
        }

        override fun close() {}
    }

    private fun request(
        initImage: InitImage?,
        strength: Double = 0.6,
        steps: Int = 8,
    ) = GenerationRequest("a cat", steps = steps, guidance = 1f, seed = 7, initImage = initImage, strength = strength)

    @Test
    fun `the start step is Python's img2img_start, with strength a Double as Python's float`() {
        // (steps, strength) -> the index sfmobile.pipeline.img2img_start returns.
        val cases = mapOf((8 to 0.6) to 4, (8 to 1.0) to 0, (8 to 0.125) to 7, (4 to 0.5) to 2, (10 to 0.7) to 3, (50 to 0.58) to 22)
        for ((request, start) in cases) assertEquals(start, Pipeline.img2imgStart(request.first, request.second), "$request")
        // 50 * 0.58 is 28.999999999999996 in double (28 steps run) but 29 in float32: hence a Double strength.
        assertEquals(29, (50 * 0.58f).toInt())
    }

    @Test
    fun `a strength outside 0 to 1 or one that runs no step is refused before any engine call`() {
        val engine = TextOnlyEngine()
        val pipeline = Pipeline(withEncoder, Tokenizer.default(), engine)
        for (strength in listOf(0.0, -0.5, 1.5, Double.NaN, Double.POSITIVE_INFINITY)) {
            val error = assertFailsWith<InputException> { pipeline.generate(request(grey, strength)) }
            assertEquals("strength must be a finite number in (0, 1], got $strength", error.message)
        }
        val error = assertFailsWith<InputException> { pipeline.generate(request(grey, 0.1)) }
        assertEquals("strength 0.1 of 8 steps runs no step: use strength >= 0.125 or more steps", error.message)
        assertEquals(emptyList<String>(), engine.calls)
    }

    @Test
    fun `a picture of another size or shape, or with NaN, is refused naming it`() {
        val engine = TextOnlyEngine()
        val pipeline = Pipeline(withEncoder, Tokenizer.default(), engine)
        val wide = assertFailsWith<InputException> { pipeline.generate(request(InitImage.Rgb(128, 64, ByteArray(128 * 64 * 3)))) }
        assertTrue("128x64" in wide.message!! && "64x64" in wide.message!!, wide.message)
        assertFailsWith<InputException> { pipeline.generate(request(InitImage.Rgb(64, 64, ByteArray(10)))) }
        val chw = InitImage.Tensor(FloatTensor(intArrayOf(1, 64, 64, 3), FloatArray(64 * 64 * 3)))
        assertTrue("[1, 3, 64, 64]" in assertFailsWith<InputException> { pipeline.generate(request(chw)) }.message!!)
        val nan = InitImage.Tensor(FloatTensor(intArrayOf(1, 3, 64, 64), FloatArray(3 * 64 * 64) { Float.NaN }))
        assertTrue("NaN" in assertFailsWith<InputException> { pipeline.generate(request(nan)) }.message!!)
        assertEquals(emptyList<String>(), engine.calls)
    }

    @Test
    fun `RGB bytes become 2 x pixel over 255 minus 1 in float32, planar`() {
        val rgb = byteArrayOf(0, 127, -1, 10, 20, 30) // two pixels; -1 is 255
        val tensor = InitImage.Rgb(2, 1, rgb).toTensor(1, 2)
        assertArrayEquals(intArrayOf(1, 3, 1, 2), tensor.shape)
        val expected = listOf(0, 10, 127, 20, 255, 30).map { (it.toFloat() / 255f) * 2f - 1f }
        assertArrayEquals(expected.toFloatArray(), tensor.data)
        assertEquals(-1f, tensor.data[0])
        assertEquals(1f, tensor.data[4])
    }

    @Test
    fun `a bundle without an encoder refuses image-to-image naming --with-encoder, before any engine call`() {
        val engine = TextOnlyEngine()
        val error = assertFailsWith<BundleException> { Pipeline(withoutEncoder, Tokenizer.default(), engine).generate(request(grey)) }
        assertTrue("--with-encoder" in error.message!! && "encoder" in error.message!!, error.message)
        assertEquals(emptyList<String>(), engine.calls)
        assertEquals(null, withoutEncoder.encoder)
        assertTrue("--with-encoder" in assertFailsWith<BundleException> { withoutEncoder.component("encoder") }.message!!)
    }

    @Test
    fun `an engine written for text-to-image gets the default encodeImage, a typed error`() {
        val engine = TextOnlyEngine()
        val error = assertFailsWith<BundleException> { Pipeline(withEncoder, Tokenizer.default(), engine).generate(request(grey)) }
        assertEquals(Engine.NO_ENCODER, error.message)
        assertEquals(emptyList<String>(), engine.calls)
    }

    @Test
    fun `an encoder output of the wrong shape stops the generation naming the encoder`() {
        val engine =
            object : TextOnlyEngine() {
                override fun encodeImage(image: FloatTensor) = FloatTensor(intArrayOf(1, 4, 4, 4), FloatArray(64))
            }
        val error = assertFailsWith<EngineException> { Pipeline(withEncoder, Tokenizer.default(), engine).generate(request(grey)) }
        assertEquals("encoder returned shape [1, 4, 4, 4], expected [1, 4, 8, 8]", error.message)
    }

    @Test
    fun `the loop runs the kept timesteps only, one progress call each`() {
        val engine =
            object : TextOnlyEngine() {
                override fun encodeImage(image: FloatTensor) = FloatTensor(intArrayOf(1, 4, 8, 8), FloatArray(256))
            }
        val progress = ArrayList<Pair<Int, Int>>()
        Pipeline(withEncoder, Tokenizer.default(), engine).generate(request(grey, 0.5), onStep = { d, t -> progress += d to t })
        val kept = DdimScheduler(withEncoder.scheduler).timesteps(8).drop(4)
        assertEquals(listOf("encode_text") + kept.map { "predict ${it.toFloat()}" } + "decode", engine.calls)
        assertEquals((1..4).map { it to 4 }, progress)
    }
}

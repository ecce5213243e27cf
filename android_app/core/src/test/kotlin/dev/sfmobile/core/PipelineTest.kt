package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.test.assertFailsWith

/** The pipeline's call pattern where the replay recordings do not reach: a guidance-input model, bad requests. */
class PipelineTest {
    private val guidedManifest = Bundle.open(File(Golden.dir, "bundles/valid-int8-guidance-input")).manifest

    /** Answers zeros of the right shapes and writes down every call. */
    private class CountingEngine : Engine {
        val calls = ArrayList<String>()

        override fun encodeText(tokenIds: IntTensor): FloatTensor {
            calls += "encode ${tokenIds.shape.contentToString()}"
            return FloatTensor(intArrayOf(1, 77, 128), FloatArray(77 * 128))
        }

        override fun predict(
            latents: FloatTensor,
            timestep: Float,
            text: FloatTensor,
            guidance: Float?,
        ): FloatTensor {
            calls += "predict ${latents.shape[0]} ${text.shape[0]} $guidance"
            return FloatTensor(latents.shape, FloatArray(latents.data.size))
        }

        override fun decode(latents: FloatTensor): FloatTensor {
            calls += "decode"
            return FloatTensor(intArrayOf(1, 3, 64, 64), FloatArray(3 * 64 * 64))
        }

        override fun close() {}
    }

    @Test
    fun `a guidance-input model gets one call per step with the scale and no negative prompt`() {
        val engine = CountingEngine()
        val request = GenerationRequest("a cat", negativePrompt = "blurry", steps = 3, guidance = 7.5f, seed = 0)
        val generation = Pipeline(guidedManifest, Tokenizer.default(), engine).generate(request)
        assertEquals(listOf("encode [1, 77]") + List(3) { "predict 1 1 7.5" } + "decode", engine.calls)
        assertEquals(64 * 64 * 3, generation.rgb.size)
        assertEquals(128.toByte(), generation.rgb[0]) // 0 decodes to mid grey: rint(0.5 * 255)
    }

    @Test
    fun `non-finite or negative guidance and bad step counts are refused before any engine call`() {
        val engine = CountingEngine()
        val pipeline = Pipeline(guidedManifest, Tokenizer.default(), engine)
        for (guidance in listOf(Float.NaN, Float.POSITIVE_INFINITY, -1f)) {
            val error =
                assertFailsWith<InputException> { pipeline.generate(GenerationRequest("a", steps = 2, guidance = guidance, seed = 0)) }
            assertEquals(true, "guidance" in error.message!!)
        }
        assertFailsWith<InputException> { pipeline.generate(GenerationRequest("a", steps = 0, guidance = 2f, seed = 0)) }
        assertEquals(emptyList<String>(), engine.calls)
    }
}

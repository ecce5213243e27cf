package dev.sfmobile.core

import com.google.gson.JsonObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.math.abs
import kotlin.test.assertFailsWith

/**
 * Whole generations of the demo model recorded by Python (tests/golden/replay/): the Kotlin
 * Pipeline runs against an Engine that checks every input against the recorded one and returns
 * the recorded output; the final pixels must be identical. The img2img case starts from a
 * recorded picture at strength 0.6 (the encoder's input is checked too); the tiled-decode case's
 * bundle keeps its tile decoder, so the Pipeline decodes in tiles (each tile's input is checked).
 */
class ReplayTest {
    private val root = File(Golden.dir, "replay")
    private val caseNames = Golden.json("replay/index.json").getAsJsonArray("cases").map { it.asString }

    /** Checks each call against the recording, in order, and answers with the recorded output. */
    private class ReplayEngine(
        private val dir: File,
        private val calls: List<JsonObject>,
    ) : Engine {
        var next = 0
        private val textOutputs = ArrayList<FloatArray>()

        private fun expect(kind: String): JsonObject {
            val call = calls.getOrNull(next) ?: throw AssertionError("call ${next + 1} ($kind) was not recorded")
            assertEquals(call.get("call").asString, kind, "call ${next + 1}")
            next++
            return call
        }

        private fun floats(spec: JsonObject) = Golden.floats(File(dir, spec.get("file").asString))

        private fun shape(spec: JsonObject) = spec.getAsJsonArray("shape").map { it.asInt }.toIntArray()

        private fun assertClose(
            expected: FloatArray,
            actual: FloatArray,
            what: String,
        ) {
            assertEquals(expected.size, actual.size, what)
            for (i in expected.indices) assertTrue(abs(expected[i] - actual[i]) <= 1e-6f * maxOf(1f, abs(expected[i])), "$what value $i")
        }

        override fun encodeText(tokenIds: IntTensor): FloatTensor {
            val call = expect("encode_text")
            val ids = call.getAsJsonObject("token_ids")
            assertArrayEquals(shape(ids), tokenIds.shape)
            assertArrayEquals(Golden.ints(File(dir, ids.get("file").asString)), tokenIds.data, "token ids")
            val output = call.getAsJsonObject("output")
            return FloatTensor(shape(output), floats(output)).also { textOutputs += it.data }
        }

        override fun predict(
            latents: FloatTensor,
            timestep: Float,
            text: FloatTensor,
            guidance: Float?,
        ): FloatTensor {
            val call = expect("predict")
            val recorded = call.getAsJsonObject("latents")
            assertArrayEquals(shape(recorded), latents.shape, "latents shape, call $next")
            assertClose(floats(recorded), latents.data, "latents, call $next")
            assertEquals(call.get("timestep").asFloat, timestep, "timestep, call $next")
            val rows = call.getAsJsonArray("text_rows").map { it.asInt }
            assertArrayEquals(rows.map { textOutputs[it] }.reduce { a, b -> a + b }, text.data, "text, call $next")
            assertEquals(call.get("guidance").takeUnless { it.isJsonNull }?.asFloat, guidance, "guidance, call $next")
            val output = call.getAsJsonObject("output")
            return FloatTensor(shape(output), floats(output))
        }

        override fun encodeImage(image: FloatTensor): FloatTensor {
            val call = expect("encode_image")
            val recorded = call.getAsJsonObject("image")
            assertArrayEquals(shape(recorded), image.shape, "encoder input shape")
            assertArrayEquals(floats(recorded), image.data, "encoder input") // the same float32 arithmetic: exact
            val output = call.getAsJsonObject("output")
            return FloatTensor(shape(output), floats(output))
        }

        override fun decode(latents: FloatTensor): FloatTensor = replayDecode("decode", latents)

        override fun decodeTile(latents: FloatTensor): FloatTensor = replayDecode("decode_tile", latents)

        private fun replayDecode(
            kind: String,
            latents: FloatTensor,
        ): FloatTensor {
            val call = expect(kind)
            val recorded = call.getAsJsonObject("latents")
            assertArrayEquals(shape(recorded), latents.shape, "$kind input shape, call $next")
            assertClose(floats(recorded), latents.data, "$kind input, call $next")
            val output = call.getAsJsonObject("output")
            return FloatTensor(shape(output), floats(output))
        }

        override fun close() {}
    }

    private fun case(name: String): Triple<Pipeline, ReplayEngine, JsonObject> {
        val dir = File(root, name)
        val index = Golden.json("replay/$name/index.json")
        val manifest = Manifest.parse(File(dir, index.get("manifest").asString).readText(), "$dir/manifest.json")
        val engine = ReplayEngine(dir, index.getAsJsonArray("calls").map { it.asJsonObject })
        return Triple(Pipeline(manifest, Tokenizer.default(), engine), engine, index)
    }

    private fun request(
        name: String,
        index: JsonObject,
    ): GenerationRequest {
        val r = index.getAsJsonObject("request")
        val request =
            GenerationRequest(
                r.get("prompt").asString,
                r.get("negative_prompt").asString,
                r.get("steps").asInt,
                r.get("guidance").asFloat,
                java.lang.Long.parseUnsignedLong(r.get("seed").asString),
            )
        val init = r.getAsJsonObject("init_image") ?: return request
        val (height, width) = init.getAsJsonArray("shape").map { it.asInt }
        val rgb = File(root, "$name/" + init.get("file").asString).readBytes()
        return request.copy(initImage = InitImage.Rgb(width, height, rgb), strength = r.get("strength").asDouble)
    }

    @Test
    fun `every recorded generation replays to identical pixels`() {
        assertEquals(listOf("cfg-batch2", "cfg-batch1", "guidance-off", "img2img", "tiled-decode"), caseNames)
        for (name in caseNames) {
            val (pipeline, engine, index) = case(name)
            val steps = ArrayList<Pair<Int, Int>>()
            val request = request(name, index)
            val generation = pipeline.generate(request, onStep = { done, total -> steps += done to total })
            assertEquals(index.getAsJsonArray("calls").size(), engine.next, "$name: every recorded call made")
            val pixels = File(root, "$name/" + index.getAsJsonObject("pixels").get("file").asString).readBytes()
            assertArrayEquals(pixels, generation.rgb, "$name: pixels")
            assertEquals(64, generation.width)
            val n = request.steps - if (request.initImage == null) 0 else Pipeline.img2imgStart(request.steps, request.strength)
            assertEquals((1..n).map { it to n }, steps, "$name: one progress call per step")
            val unetCalls = if (name == "cfg-batch1") 2 * n else n
            assertEquals(unetCalls, generation.timings.unetMs.size, "$name: one timing per UNet call")
            val tiles = index.getAsJsonArray("calls").count { it.asJsonObject.get("call").asString == "decode_tile" }
            assertEquals(if (name == "tiled-decode") 9 else 0, tiles, "$name: 3x3 tiles of 4 on the 8x8 latent, or none")
        }
    }

    @Test
    fun `cancelling stops between steps without another engine call`() {
        val (pipeline, engine, index) = case("cfg-batch2")
        var done = 0
        assertFailsWith<CancelledException> {
            pipeline.generate(request("cfg-batch2", index), onStep = { d, _ -> done = d }, isCancelled = { done == 3 })
        }
        assertEquals(3, done)
        assertEquals(2 + 3, engine.next) // two text encodings, three UNet calls
    }

    @Test
    fun `a non-finite engine output stops the generation naming the component and step`() {
        val (_, _, index) = case("guidance-off")
        val manifest = Manifest.parse(File(root, "guidance-off/manifest.json").readText(), "manifest.json")
        val broken =
            object : Engine {
                override fun encodeText(tokenIds: IntTensor) = FloatTensor(intArrayOf(1, 77, 128), FloatArray(77 * 128))

                override fun predict(
                    latents: FloatTensor,
                    timestep: Float,
                    text: FloatTensor,
                    guidance: Float?,
                ) = FloatTensor(latents.shape, FloatArray(latents.data.size) { Float.NaN })

                override fun decode(latents: FloatTensor) = throw AssertionError("decoded after a NaN")

                override fun close() {}
            }
        val error =
            assertFailsWith<EngineException> { Pipeline(manifest, Tokenizer.default(), broken).generate(request("guidance-off", index)) }
        assertEquals("unet returned a non-finite value (NaN) at step 1", error.message)
    }
}

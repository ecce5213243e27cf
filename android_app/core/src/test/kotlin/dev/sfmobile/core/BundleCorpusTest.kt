package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.test.assertFailsWith

class BundleCorpusTest {
    private val cases = Golden.json("bundles/index.json").getAsJsonArray("cases").map { it.asJsonObject }

    @Test
    fun `Kotlin accepts exactly the bundles Python accepts, naming the same field`() {
        assertTrue(cases.size >= 20)
        assertTrue(cases.any { it.get("accepted").asBoolean } && cases.any { !it.get("accepted").asBoolean })
        for (case in cases) {
            val name = case.get("name").asString
            val folder = File(Golden.dir, "bundles/$name")
            val error = runCatching { Bundle.open(folder).tokenizer() }.exceptionOrNull()
            if (error != null && error !is BundleException && error !is TokenizerException) {
                throw AssertionError("$name: unexpected $error", error)
            }
            assertEquals(case.get("accepted").asBoolean, error == null, "$name: Kotlin says ${error?.message ?: "accepted"}")
            if (error != null) {
                val phrase = case.get("message_names").asString
                assertTrue(phrase in error.message!!, "$name: '${error.message}' does not name '$phrase'")
            }
        }
    }

    @Test
    fun `sizes-only verification skips the checksum`() {
        assertEquals("unet.onnx", Bundle.open(File(Golden.dir, "bundles/wrong-sha256"), Verification.SIZES).componentFile("unet").name)
        assertFailsWith<BundleException> { Bundle.open(File(Golden.dir, "bundles/wrong-size"), Verification.SIZES) }
    }

    @Test
    fun `a valid bundle exposes its manifest and sizes`() {
        val bundle = Bundle.open(File(Golden.dir, "bundles/valid"))
        assertEquals(2, bundle.manifest.guidance.cfgBatch)
        assertEquals(0.18215, bundle.manifest.latent.scalingFactor)
        assertEquals(
            listOf(2, 4, 8, 8),
            bundle.manifest
                .component("unet")
                .inputs[0]
                .shape,
        )
        assertEquals(
            bundle.manifest.files.values
                .sumOf { it.bytes },
            bundle.totalBytes(),
        )
        val int8 = Bundle.open(File(Golden.dir, "bundles/valid-int8-guidance-input")).manifest
        assertEquals(Quantization(0.05, -3), int8.component("unet").inputs[0].quantization)
        assertTrue(int8.guidance.input)
        assertEquals(1.0..14.0, int8.guidance.distilledRange)
        assertEquals(null, bundle.manifest.guidance.distilledRange)
    }

    @Test
    fun `the optional encoder and the recipe's LoRAs are read, absent ones are empty`() {
        val bundle = Bundle.open(File(Golden.dir, "bundles/valid-encoder-lora"))
        val encoder = bundle.manifest.encoder!!
        assertEquals(listOf(1, 3, 64, 64), encoder.inputs[0].shape)
        assertEquals("latent_mean", encoder.outputs[0].name)
        assertEquals("encoder.onnx", bundle.componentFile("encoder").name)
        val lora = bundle.manifest.createdBy.lora
        assertEquals(listOf("style.safetensors" to 0.8, "detail.safetensors" to 1.0), lora.map { it.file to it.scale })
        val plain = Bundle.open(File(Golden.dir, "bundles/valid")).manifest
        assertEquals(null, plain.encoder)
        assertEquals(emptyList<LoraEntry>(), plain.createdBy.lora)
        assertEquals(Manifest.COMPONENT_NAMES, plain.components.keys.toList())
    }
}

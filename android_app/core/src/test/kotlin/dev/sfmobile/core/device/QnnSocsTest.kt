package dev.sfmobile.core.device

import dev.sfmobile.core.Bundle
import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Golden
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

class QnnSocsTest {
    @Test
    fun `the table is sfmobile's (tests-golden-qnn_socs written from sfmobile-qnn-socs-py)`() {
        val golden = Golden.json("qnn_socs/index.json").getAsJsonArray("socs").map { it.asJsonObject }
        val python =
            golden.map {
                QnnSoc(it.get("name").asString, it.get("marketing_name").asString, it.get("htp_arch").asInt, it.get("soc_model").asInt)
            }
        assertTrue(python.isNotEmpty())
        assertEquals(python, QnnSocs.TABLE)
    }

    @Test
    fun `a qnn bundle runs on its own SoC, named in any case`() {
        assertEquals("SM8650", QnnSocs.checkDevice(manifest("qnn"), "sm8650").name)
    }

    @Test
    fun `a qnn bundle is refused on another SoC, naming both chips`() {
        val error = assertThrows(BundleException::class.java) { QnnSocs.checkDevice(manifest("qnn", qnnSoc = "SM8650"), "SM8550") }
        assertEquals(
            "bundle compiled for SM8650 (Snapdragon 8 Gen 3), cannot run on SM8550 (Snapdragon 8 Gen 2): export it again with --soc SM8550",
            error.message,
        )
        val unknown = assertThrows(BundleException::class.java) { QnnSocs.checkDevice(manifest("qnn"), "") }
        assertTrue(unknown.message!!.contains("compiled for SM8650 (Snapdragon 8 Gen 3), cannot run on 'unknown'"), unknown.message)
        val tensor = assertThrows(BundleException::class.java) { QnnSocs.checkDevice(manifest("qnn"), "GS201") }
        assertTrue(tensor.message!!.contains("cannot run on 'GS201'"), tensor.message)
    }

    @Test
    fun `a SoC outside the table and an onnx bundle are refused`() {
        val error = assertThrows(BundleException::class.java) { QnnSocs.checkDevice(manifest("qnn", qnnSoc = "SM1234"), "SM1234") }
        assertTrue(error.message!!.contains("qnn.soc 'SM1234' is not a SoC this app knows: SM8450, SM8475"), error.message)
        val onnx = assertThrows(BundleException::class.java) { QnnSocs.checkDevice(manifest("onnx"), "SM8650") }
        assertTrue(onnx.message!!.contains("no qnn section"), onnx.message)
    }

    @Test
    fun `the corpus's QNN bundle gives the provider its SoC's options, fp16 precision only for fp16 components`() {
        val manifest = Bundle.open(File(Golden.dir, "bundles/valid-qnn")).manifest
        assertEquals(
            mapOf("htp_arch" to "75", "soc_model" to "57", "enable_htp_fp16_precision" to "1"),
            QnnSocs.htpOptions(manifest, "text_encoder"),
        )
        assertEquals(mapOf("htp_arch" to "75", "soc_model" to "57"), QnnSocs.htpOptions(manifest, "unet"))
        assertEquals(listOf("unet_ctx.onnx", "unet_ctx_qnn.bin"), manifest.component("unet").files)
        assertEquals("v2.51.0.260929181845", manifest.qnn!!.qnnSdk)
        assertTrue(manifest.qnn!!.htpOnly)
        val fallback = Bundle.open(File(Golden.dir, "bundles/valid-qnn-cpu-fallback")).manifest.qnn!!
        assertEquals(listOf("/mid_block/attentions.0/Softmax"), fallback.placement.getValue("unet").cpuNodes)
        assertEquals(setOf("text_encoder", "unet", "decoder", "refiner"), fallback.placement.keys)
        assertEquals(false, fallback.htpOnly)
    }
}

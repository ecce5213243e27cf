package dev.sfmobile.core.device

import dev.sfmobile.core.Bundle
import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Golden
import dev.sfmobile.core.InputException
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.TiledDecode
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

class ModelFilesTest {
    @Test
    fun `cpu backends load each component's model file`() {
        val files = ModelFiles.resolve(manifest(), Backend.ORT_CPU)
        assertEquals(mapOf("text_encoder" to "text_encoder.onnx", "unet" to "unet.onnx", "decoder" to "decoder.onnx"), files)
        assertEquals("unet.tflite", ModelFiles.resolve(manifest("tflite"), Backend.LITERT_GPU)["unet"])
    }

    @Test
    fun `a tiling bundle loads its tile decoder instead of the full decoder, bound by the decoder's input name`() {
        val folder = File(Golden.dir, "bundles/valid-decoder-tile")
        val manifest = Bundle.open(folder).manifest
        val files = ModelFiles.resolve(manifest, Backend.ORT_CPU)
        assertEquals(listOf("text_encoder", "unet", "decoder_tile"), files.keys.toList(), "auto tiles: no full decoder")
        assertEquals("decoder_tile.onnx", files["decoder_tile"])
        assertEquals(files, ModelFiles.resolve(manifest, Backend.ORT_CPU, tileDecoder = true))
        val whole = ModelFiles.resolve(manifest, Backend.ORT_CPU, tileDecoder = false)
        assertEquals(mapOf("text_encoder" to "text_encoder.onnx", "unet" to "unet.onnx", "decoder" to "decoder.onnx"), whole)
        val text = File(folder, "manifest.json").readText()
        val tileInput = text.indexOf("\"latents\"", text.indexOf("\"decoder_tile\": {"))
        val renamed = Manifest.parse(text.replaceRange(tileInput, tileInput + 9, "\"sample\""), "renamed/manifest.json")
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(renamed, Backend.ORT_CPU) }
        assertEquals("component 'decoder_tile' has inputs [sample], the Android engines need [latents]", error.message)
        assertEquals(whole, ModelFiles.resolve(renamed, Backend.ORT_CPU, tileDecoder = false), "off: the tile decoder is not loaded")
    }

    @Test
    fun `asking for tiles from a bundle without a tile decoder is refused before loading`() {
        val error = assertThrows(InputException::class.java) { ModelFiles.resolve(manifest(), Backend.ORT_CPU, tileDecoder = true) }
        assertEquals(TiledDecode.NO_TILE_DECODER, error.message)
    }

    @Test
    fun `a backend of the other runtime is refused naming the ones that fit`() {
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(manifest("onnx"), Backend.LITERT_NPU) }
        assertTrue(error.message!!.contains("is onnx but backend litert-npu runs tflite"), error.message)
        assertTrue(error.message!!.endsWith("choose ort-cpu, ort-nnapi"), error.message)
    }

    @Test
    fun `a tensor that is neither float32 nor int32 is refused naming it`() {
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(manifest(unetInputDtype = "uint8"), Backend.ORT_CPU) }
        assertTrue(error.message!!.contains("component 'unet' input 'sample' is uint8"), error.message)
    }

    @Test
    fun `ort-qnn loads each component's EPContext model from a qnn bundle`() {
        val files = ModelFiles.resolve(manifest("qnn"), Backend.ORT_QNN)
        assertEquals(mapOf("text_encoder" to "text_encoder_ctx.onnx", "unet" to "unet_ctx.onnx", "decoder" to "decoder_ctx.onnx"), files)
    }

    @Test
    fun `ort-qnn refuses an onnx bundle and the other backends refuse a qnn bundle, naming the fitting ones`() {
        val onnx = assertThrows(BundleException::class.java) { ModelFiles.resolve(manifest("onnx"), Backend.ORT_QNN) }
        assertTrue(onnx.message!!.contains("component 'text_encoder' is onnx but backend ort-qnn runs qnn bundles"), onnx.message)
        assertTrue(onnx.message!!.contains("export --format qnn"), onnx.message)
        assertTrue(onnx.message!!.endsWith("choose ort-cpu, ort-nnapi"), onnx.message)
        val qnn = assertThrows(BundleException::class.java) { ModelFiles.resolve(manifest("qnn"), Backend.ORT_CPU) }
        assertTrue(qnn.message!!.contains("is qnn but backend ort-cpu runs onnx bundles; choose ort-qnn"), qnn.message)
    }

    @Test
    fun `a qnn component whose first file is not its EPContext model is refused`() {
        val m = manifest("qnn", files = mapOf("unet" to listOf("unet_ctx_qnn.bin", "unet_ctx.onnx")))
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(m, Backend.ORT_QNN) }
        assertTrue(error.message!!.contains("component 'unet' lists unet_ctx_qnn.bin first"), error.message)
    }

    @Test
    fun `an onnx component that is only a QNN context is refused by the ONNX backends`() {
        val m = manifest(files = mapOf("unet" to listOf("unet_ctx.onnx", "unet_QNN_1.bin")))
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(m, Backend.ORT_NNAPI) }
        assertTrue(error.message!!.contains("QNN context (unet_ctx.onnx)"), error.message)
    }
}

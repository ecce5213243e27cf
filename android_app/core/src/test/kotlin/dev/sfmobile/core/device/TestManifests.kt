package dev.sfmobile.core.device

import dev.sfmobile.core.Manifest

/**
 * A valid manifest.json text for tests, with each component's format, files and tensor dtype
 * chosen; format qnn gives a QNN bundle (`<name>_ctx.onnx` + `<name>_ctx_qnn.bin`, w8a16 with an
 * fp16 text encoder, a qnn section for [qnnSoc] with all nodes on the HTP).
 */
internal fun manifestText(
    format: String = "onnx",
    files: Map<String, List<String>> = mapOf(),
    extraFiles: List<String> = listOf(),
    unetInputDtype: String = "float32",
    fileEntries: Map<String, Pair<String, Long>>? = null,
    startEndIds: Pair<Int, Int> = 49406 to 49407,
    qnnSoc: String = "SM8650",
): String {
    val (startId, endId) = startEndIds
    val ext = if (format == "onnx") "onnx" else "tflite"
    val qnn = format == "qnn"
    val componentFiles =
        Manifest.COMPONENT_NAMES.associateWith {
            files[it] ?: if (qnn) listOf("${it}_ctx.onnx", "${it}_ctx_qnn.bin") else listOf("$it.$ext")
        }
    val precision = { name: String ->
        when {
            !qnn -> "fp32"
            name == "text_encoder" -> "fp16"
            else -> "w8a16"
        }
    }
    val placement = Manifest.COMPONENT_NAMES.joinToString(", ") { """"$it": {"htp_nodes": 10, "io_nodes": 0, "cpu_nodes": []}""" }
    val qnnSection =
        if (qnn) """"qnn": {"soc": "$qnnSoc", "htp_arch": 75, "soc_model": 57, "qnn_sdk": "v2.51.0", "placement": {$placement}},""" else ""
    val sha = "0".repeat(64)

    fun tensor(
        name: String,
        shape: String,
        dtype: String,
    ) = """{"name": "$name", "shape": $shape, "dtype": "$dtype"}"""
    val inputs =
        mapOf(
            "text_encoder" to listOf(tensor("input_ids", "[1, 77]", "int32")),
            "unet" to
                listOf(
                    tensor("sample", "[2, 4, 8, 8]", unetInputDtype),
                    tensor("timestep", "[2]", "float32"),
                    tensor("text_embeddings", "[2, 77, 32]", "float32"),
                ),
            "decoder" to listOf(tensor("latents", "[1, 4, 8, 8]", "float32")),
        )
    val outputs =
        mapOf(
            "text_encoder" to tensor("text_embeddings", "[1, 77, 32]", "float32"),
            "unet" to tensor("model_output", "[2, 4, 8, 8]", "float32"),
            "decoder" to tensor("image", "[1, 3, 64, 64]", "float32"),
        )
    val components =
        Manifest.COMPONENT_NAMES.joinToString(",\n") { name ->
            """"$name": {"format": "$format", "precision": "${precision(name)}",
              "files": [${componentFiles.getValue(name).joinToString(", ") { "\"$it\"" }}],
              "inputs": [${inputs.getValue(name).joinToString(", ")}], "outputs": [${outputs.getValue(name)}]}"""
        }
    val allFiles = componentFiles.values.flatten() + extraFiles + listOf("tokenizer/vocab.json", "tokenizer/merges.txt")
    val entries = fileEntries ?: allFiles.associateWith { sha to 1L }
    val filesJson = entries.entries.joinToString(",\n") { (path, e) -> """"$path": {"sha256": "${e.first}", "bytes": ${e.second}}""" }
    return """
        {"format": "sfmobile-bundle", "format_version": 1,
         "components": {$components},
         "scheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
           "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "timestep_spacing": "leading",
           "steps_offset": 1, "set_alpha_to_one": false, "clip_sample": false, "clip_sample_range": 1.0,
           "default_steps": 8, "default_guidance": 7.5},
         "image": {"height": 64, "width": 64},
         "latent": {"channels": 4, "height": 8, "width": 8, "scaling_factor": 0.18215},
         "tokenizer": {"vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt", "max_length": 77,
           "start_id": $startId, "end_id": $endId, "pad_id": $endId},
         "guidance": {"cfg_batch": 2, "input": false},
         "created_by": {"sfmobile_version": "0.1.0", "source": "demo", "source_sha256": "$sha",
           "recipe": {"format": "$format", "precision": "${precision("unet")}", "quantization": null, "calibration": null,
             "future_field": [1, 2]}},
         $qnnSection
         "files": {$filesJson}}
        """.trimIndent()
}

internal fun manifest(
    format: String = "onnx",
    files: Map<String, List<String>> = mapOf(),
    extraFiles: List<String> = listOf(),
    unetInputDtype: String = "float32",
    qnnSoc: String = "SM8650",
): Manifest = Manifest.parse(manifestText(format, files, extraFiles, unetInputDtype, qnnSoc = qnnSoc), "test/manifest.json")

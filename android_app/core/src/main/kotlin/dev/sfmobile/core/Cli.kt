package dev.sfmobile.core

import java.io.File
import java.io.IOException
import java.math.BigInteger
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.system.exitProcess

/**
 * `sfcore`, the core's command line (android_app/core/sfcore runs it): the same commands,
 * output and errors as `sfmobile tokenize` and `sfmobile noise`, so both can be compared on
 * any input. Errors the core raises on purpose are one line on stderr and exit code 2.
 */
object Cli {
    private const val USAGE = "usage: sfcore tokenize [--tokenizer DIR] TEXT... | sfcore noise --seed N [--shape A,B,C,D] --out FILE.npy"
    private val TWO_POW_64: BigInteger = BigInteger.ONE.shiftLeft(64)

    @JvmStatic
    fun main(args: Array<String>) {
        val code =
            try {
                run(args.toList())
                0
            } catch (error: SfmobileException) {
                System.err.println("error: ${error.message}")
                2
            }
        System.out.flush()
        exitProcess(code)
    }

    fun run(args: List<String>) {
        when (args.firstOrNull()) {
            "tokenize" -> tokenize(args.drop(1))
            "noise" -> noise(args.drop(1))
            else -> throw InputException("unknown command ${args.firstOrNull()?.let { "'$it'" } ?: "(none)"}; $USAGE")
        }
    }

    /** Options (`--name value` or `--name=value`) and positional arguments; `--` ends the options. */
    private fun parse(
        args: List<String>,
        known: Set<String>,
    ): Pair<Map<String, String>, List<String>> {
        val options = HashMap<String, String>()
        val positional = ArrayList<String>()
        var i = 0
        var onlyPositional = false
        while (i < args.size) {
            val arg = args[i]
            if (onlyPositional || !arg.startsWith("-") || arg == "-") {
                positional += arg
            } else if (arg == "--") {
                onlyPositional = true
            } else {
                val name = arg.substringBefore('=')
                if (name !in known) throw InputException("no such option: $name")
                options[name] =
                    if ('=' in arg) {
                        arg.substringAfter('=')
                    } else {
                        args.getOrNull(++i) ?: throw InputException("option $name requires an argument")
                    }
            }
            i++
        }
        return options to positional
    }

    private fun tokenize(args: List<String>) {
        val (options, prompts) = parse(args, setOf("--tokenizer"))
        if (prompts.isEmpty()) throw InputException("missing argument 'PROMPTS...'")
        val warn = { message: String -> System.err.println("warning: $message") }
        val tokenizer = options["--tokenizer"]?.let { Tokenizer.fromFolder(File(it), warn) } ?: Tokenizer.default(warn)
        val out = StringBuilder()
        for (prompt in prompts) out.append(tokenizer.encode(prompt).joinToString(", ", "[", "]")).append('\n')
        print(out)
    }

    private fun noise(args: List<String>) {
        val (options, extra) = parse(args, setOf("--seed", "--shape", "--out"))
        if (extra.isNotEmpty()) throw InputException("unexpected argument '${extra.first()}'")
        val seedText = options["--seed"] ?: throw InputException("missing option '--seed'")
        val outText = options["--out"] ?: throw InputException("missing option '--out'")
        val seedNumber = seedText.trim().takeIf { Regex("[+-]?[0-9]+").matches(it) }?.toBigInteger()
        val shapeText = options["--shape"] ?: "1,4,64,64"
        if (seedNumber == null) throw InputException("--seed must be an integer, got '$seedText'")
        val shape = parseShape(shapeText)
        val out = File(outText)
        checkNpyOut(out)
        if (seedNumber.signum() < 0 || seedNumber >= TWO_POW_64) throw InputException("seed must be in [0, 2^64), got $seedNumber")
        val noise = Noise.gaussian(seedNumber.toLong().toULong(), shape)
        try {
            out.writeBytes(npy(noise))
        } catch (error: IOException) {
            throw InputException("cannot write --out $out: ${error.message}")
        }
        println("wrote $out (${shape.joinToString("x")} float32, seed $seedNumber)")
    }

    /** '1,4,64,64' -> [1, 4, 64, 64]; every dimension a positive integer (ASCII digits). */
    fun parseShape(text: String): IntArray {
        val parts = text.split(",").map { it.trim() }
        val ok = text.isNotBlank() && parts.all { p -> p.isNotEmpty() && p.all { it in '0'..'9' } && p.trimStart('0').isNotEmpty() }
        if (!ok) throw InputException("--shape must be comma-separated positive integers like 1,4,64,64, got '$text'")
        val dims = parts.map { it.toBigInteger() }
        if (dims.any { it > BigInteger.valueOf(Int.MAX_VALUE.toLong()) }) {
            throw InputException("--shape $text has a dimension larger than ${Int.MAX_VALUE}")
        }
        return dims.map { it.toInt() }.toIntArray().also { elementCount(it) }
    }

    /** A float32 tensor as numpy's np.save writes it (format 1.0, C order, little-endian). */
    fun npy(tensor: FloatTensor): ByteArray {
        val shape = tensor.shape
        val shapeRepr = if (shape.size == 1) "(${shape[0]},)" else shape.joinToString(", ", "(", ")")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': $shapeRepr, }"
        header += " ".repeat(21 - shape[0].toString().length) // numpy's room to grow axis 0
        val headerLength = header.length + 1
        val padding = 64 - ((8 + 2 + headerLength) % 64)
        val bytes = ByteBuffer.allocate(10 + headerLength + padding + 4 * tensor.data.size).order(ByteOrder.LITTLE_ENDIAN)
        bytes.put(
            byteArrayOf(0x93.toByte(), 'N'.code.toByte(), 'U'.code.toByte(), 'M'.code.toByte(), 'P'.code.toByte(), 'Y'.code.toByte(), 1, 0),
        )
        bytes.putShort((headerLength + padding).toShort())
        bytes.put((header + " ".repeat(padding) + "\n").toByteArray(Charsets.US_ASCII))
        tensor.data.forEach { bytes.putFloat(it) }
        return bytes.array()
    }
}

/** The checks and messages of Python's output_paths.check_output_file for `--out FILE.npy`. */
private fun checkNpyOut(out: File) {
    if (out.isDirectory) throw InputException("--out $out: is a folder; name a file")
    val name = out.name
    val dot = name.lastIndexOf('.')
    val suffix = if (dot > 0 && dot < name.length - 1) name.substring(dot) else ""
    if (suffix.lowercase() != ".npy") {
        val shown = if (suffix.isEmpty()) "(none)" else suffix
        throw InputException("--out $out: unsupported extension '$shown'; use one of .npy")
    }
    val parent = out.parent ?: "."
    if (!File(parent).isDirectory) throw InputException("--out $out: folder $parent does not exist")
}

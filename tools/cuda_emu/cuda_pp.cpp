/* tools/cuda_emu/cuda_pp.cpp - the one CUDA syntax g++ cannot take, rewritten
   for the emulator (C++ rather than a script: CI has only g++):

     name<T...><<<grid, block[, smem[, stream]]>>>(args)
       -> emu_launch("name", (const void *)name<T...>, grid, block, smem, stream,
                     [=]() { name<T...>(args); })
     extern __shared__ T name[];   (dynamic shared memory, at a line's start)
       -> #define name ((T *)emu_dyn_smem)

   Comments and literals are copied untouched; newlines are kept, and a #line
   names the original file, so diagnostics and __LINE__ match the source.
   Usage: cuda_pp in.cu out.cu */
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static std::string src, out;

[[noreturn]] static void fail(size_t at, const char *what) {
    fprintf(stderr, "cuda_pp: line %d: %s\n", 1 + (int)std::count(src.begin(), src.begin() + (long)at, '\n'), what);
    exit(1);
}

/* End of the comment or literal that starts at i (i itself if none). */
static size_t skip_lexeme(size_t i) {
    if (src.compare(i, 2, "//") == 0) return src.find('\n', i) == std::string::npos ? src.size() : src.find('\n', i);
    if (src.compare(i, 2, "/*") == 0) {
        size_t e = src.find("*/", i + 2);
        return e == std::string::npos ? src.size() : e + 2;
    }
    if (src[i] == '"' || src[i] == '\'') {
        size_t j = i + 1;
        while (j < src.size() && src[j] != src[i]) j += src[j] == '\\' ? 2 : 1;
        return j + 1;
    }
    return i;
}

/* Index of the bracket closing the one at open (nesting, comments, literals). */
static size_t closing(size_t open, char o, char c) {
    int depth = 0;
    for (size_t i = open; i < src.size(); i++) {
        size_t e = skip_lexeme(i);
        if (e != i) { i = e - 1; continue; }
        if (src[i] == o) depth++;
        if (src[i] == c && --depth == 0) return i;
    }
    fail(open, "unbalanced brackets");
}

static std::vector<std::string> split_top(const std::string &s) {
    std::vector<std::string> parts(1);
    int depth = 0;
    for (char ch : s) {
        if (ch == '(' || ch == '[' || ch == '{') depth++;
        if (ch == ')' || ch == ']' || ch == '}') depth--;
        if (ch == ',' && depth == 0) parts.push_back("");
        else parts.back() += ch;
    }
    return parts;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: cuda_pp in.cu out.cu\n"); return 2; }
    std::ifstream in(argv[1]);
    std::stringstream ss;
    if (!in) { fprintf(stderr, "cuda_pp: cannot read %s\n", argv[1]); return 1; }
    ss << in.rdbuf();
    src = ss.str();
    out = "#line 1 \"" + std::string(argv[1]) + "\"\n";
    for (size_t i = 0; i < src.size();) {
        size_t e = skip_lexeme(i);
        if (e != i) { out.append(src, i, e - i); i = e; continue; }
        if (src.compare(i, 17, "extern __shared__") == 0) {
            size_t semi = src.find(';', i), lb = src.rfind('[', semi), ls = out.find_last_not_of(" \t");
            std::string decl = src.substr(i + 17, lb - i - 17);
            size_t name = decl.find_last_not_of(" \t");
            while (name > 0 && (isalnum((unsigned char)decl[name - 1]) || decl[name - 1] == '_')) name--;
            if (ls != std::string::npos && out[ls] != '\n') fail(i, "extern __shared__ not at the start of a line");
            out += "#define " + decl.substr(name, decl.find_last_not_of(" \t") + 1 - name) + " ((" +
                   decl.substr(0, name) + "*)emu_dyn_smem)";
            i = semi + 1;
            continue;
        }
        if (src.compare(i, 3, "<<<") != 0) { out += src[i++]; continue; }
        /* the callee: an identifier, maybe with template arguments, just before <<< */
        size_t s = i;
        while (s > 0 && isspace((unsigned char)src[s - 1])) s--;
        if (s > 0 && src[s - 1] == '>') {
            int depth = 0;
            do {
                s--;
                depth += src[s] == '>' ? 1 : src[s] == '<' ? -1 : 0;
            } while (s > 0 && depth > 0);
        }
        while (s > 0 && (isalnum((unsigned char)src[s - 1]) || src[s - 1] == '_' || src[s - 1] == ':')) s--;
        std::string callee = src.substr(s, i - s), name = callee.substr(0, callee.find('<'));
        while (!callee.empty() && isspace((unsigned char)callee.back())) callee.pop_back();
        out.resize(out.size() - (i - s));
        size_t cfg_end = src.find(">>>", i), open = cfg_end == std::string::npos ? cfg_end : src.find('(', cfg_end);
        if (open == std::string::npos) fail(i, "<<< without >>>(");
        std::vector<std::string> cfg = split_top(src.substr(i + 3, cfg_end - i - 3));
        if (cfg.size() < 2 || cfg.size() > 4) fail(i, "a launch takes 2 to 4 configuration arguments");
        while (cfg.size() < 4) cfg.push_back(" 0");
        size_t close = closing(open, '(', ')');
        out += "emu_launch(\"" + name + "\", (const void *)" + callee;
        for (const std::string &c : cfg) out += "," + c;
        out += ", [=]() { " + callee + src.substr(open, close + 1 - open) + "; })";
        i = close + 1;
    }
    std::ofstream o(argv[2]);
    o << out;
    return o ? 0 : 1;
}

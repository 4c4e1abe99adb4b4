// Times Anserini's impact search (Lucene) query by query for benchmarks/search_bench.py.
//
//   javac -cp anserini-1.7.1-fatjar.jar -d OUT ImpactSearch.java
//   java -cp anserini-1.7.1-fatjar.jar:OUT ImpactSearch INDEX_DIR K
//
// Reads one query per line on stdin, "token weight token weight ..." (integer weights, as Anserini's pre-encoded
// SPLADE queries), searches it with io.anserini.search.SimpleImpactSearcher.search(Map<String, Integer>, k) and
// writes one line: the search's nanoseconds (System.nanoTime around the call), then "docid:score" per hit, tab
// separated. The parent process sends the next query only after reading the answer, so the searches run one at a
// time on one thread, interleaved with the other contestants.

import io.anserini.search.ScoredDoc;
import io.anserini.search.SimpleImpactSearcher;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

public class ImpactSearch {
  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: ImpactSearch INDEX_DIR K");
      System.exit(2);
    }
    int k = Integer.parseInt(args[1]);
    try (SimpleImpactSearcher searcher = new SimpleImpactSearcher(args[0])) {
      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
      String line;
      while ((line = in.readLine()) != null) {
        Map<String, Integer> query = new LinkedHashMap<>();
        String[] parts = line.trim().isEmpty() ? new String[0] : line.trim().split(" ");
        for (int i = 0; i + 1 < parts.length; i += 2) {
          query.put(parts[i], Integer.parseInt(parts[i + 1]));
        }
        long t0 = System.nanoTime();
        ScoredDoc[] hits = searcher.search(query, k);
        long t1 = System.nanoTime();
        StringBuilder sb = new StringBuilder();
        sb.append(t1 - t0);
        for (ScoredDoc h : hits) {
          sb.append('\t').append(h.docid).append(':').append(h.score);
        }
        out.write(sb.toString());
        out.newLine();
        out.flush();
      }
    }
  }
}

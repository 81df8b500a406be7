from mechatlas.cli import main

main()
